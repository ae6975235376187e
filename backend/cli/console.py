"""The terminal side of the toolkit commands: consoles, settings, JSON output, exit codes.

Exit codes: 0 ok, 1 a check or verification failed, 2 bad input or a rejected file,
3 not found or not running, 4 refused (would lose work or data), 5 store unreachable.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Collection, Iterable, Sequence
from typing import Annotated, Any, NoReturn

import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from backend.core.config import Settings, from_environ
from backend.core.filemodes import restrict_umask
from backend.core.log import configure_logging
from backend.core.logfiles import Rotation
from backend.db.backup import (
    BackupError,
    BackupNotFound,
    BackupRejected,
    DatabaseInUse,
)
from backend.flags import FlagError

OK, FAILED, BAD_INPUT, NOT_FOUND, REFUSED, UNREACHABLE = 0, 1, 2, 3, 4, 5

console = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def load_settings() -> Settings:
    # Whatever a command writes (backups, manifests, logs, SQLite files) is owner-only.
    restrict_umask()
    try:
        s = from_environ()
    except FlagError as exc:
        fail(str(exc), BAD_INPUT)
    # What the toolkit does belongs in the same log as the server's.
    configure_logging(s.log_file, s.log_level, Rotation.of(s))
    return s


def fail(message: str, code: int = FAILED) -> NoReturn:
    err.print(f"[red]error:[/red] {escape(message)}")
    raise typer.Exit(code)


def backup_exit(exc: BackupError) -> NoReturn:
    if isinstance(exc, BackupNotFound):
        fail(str(exc), NOT_FOUND)
    if isinstance(exc, BackupRejected):
        fail(f"refused: {exc}", BAD_INPUT)
    if isinstance(exc, DatabaseInUse):
        fail(f"refused: {exc}", REFUSED)
    fail(str(exc), FAILED)


def print_table(
    headers: Sequence[str],
    rows: Iterable[Sequence[str | Text]],
    *,
    ids: Collection[str],
    out: Console | None = None,
) -> None:
    """Print rows as a table whose identifier columns (`ids`: names, ids, file names, flags,
    tags: what an operator types next) are never cut or wrapped; the other columns wrap.

    Rich alone shrinks every column, identifiers included, when a table is wider than the
    terminal ("pcm_ops_tools_backup_2…"), so the widths are worked out here: identifiers at
    their full width, the rest share what is left. A terminal too narrow for that gets one
    block of "column  value" lines per row instead. Output that is not a terminal (a pipe, a
    file, a script) gets each row on one line however long. A cell is plain text (a str,
    never read as markup) or a styled Text."""
    out = out or console
    body = [[c if isinstance(c, Text) else Text(c) for c in r] for r in rows]
    natural = [max([len(h)] + [r[i].cell_len for r in body]) for i, h in enumerate(headers)]
    # Rich's default box draws a border before, between and after the columns; every cell
    # has one space of padding on each side.
    boxed, bare = 3 * len(headers) + 1, 2 * len(headers)
    if not out.is_terminal:
        wide = Console(width=sum(natural) + boxed, file=out.file, highlight=False)
        _print_grid(wide, headers, body, natural, ids, box.HEAVY_HEAD)
        return
    # No column narrower than its header or its cells' longest word (a date, a size).
    minimum = [
        min(n, max([len(h)] + [len(w) for r in body for w in r[i].plain.split()]))
        for i, (n, h) in enumerate(zip(natural, headers, strict=True))
    ]
    fixed = [h in ids for h in headers]
    for style, overhead in ((box.HEAVY_HEAD, boxed), (None, bare)):
        widths = _shared_widths(natural, minimum, fixed, out.width - overhead)
        if widths is not None:
            _print_grid(out, headers, body, widths, ids, style)
            return
    _print_blocks(out, headers, body)


def _print_grid(
    out: Console,
    headers: Sequence[str],
    body: list[list[Text]],
    widths: list[int],
    ids: Collection[str],
    style: box.Box | None,
) -> None:
    table = Table(box=style, header_style="bold underline" if style is None else "bold")
    for header, width in zip(headers, widths, strict=True):
        table.add_column(header, width=width, no_wrap=header in ids, overflow="fold")
    for r in body:
        table.add_row(*r)
    out.print(table)


def _shared_widths(
    natural: list[int], minimum: list[int], fixed: list[bool], room: int
) -> list[int] | None:
    """Identifier columns at their natural width; the others share the rest of `room`, each
    at least its minimum, the narrow ones first. None: the room is too small for that."""
    if sum(natural) <= room:
        return natural
    widths = [n if f else m for n, m, f in zip(natural, minimum, fixed, strict=True)]
    left = room - sum(widths)
    if left < 0:
        return None
    others = sorted((natural[i] - widths[i], i) for i, f in enumerate(fixed) if not f)
    for count, (wanted, i) in enumerate(others):
        extra = min(wanted, left // (len(others) - count))
        widths[i] += extra
        left -= extra
    return widths


def _print_blocks(out: Console, headers: Sequence[str], body: list[list[Text]]) -> None:
    """One block per row, a line per column: for a terminal too narrow for the table."""
    label = max(len(h) for h in headers)
    for n, r in enumerate(body):
        if n:
            out.print()
        grid = Table.grid(padding=(0, 2))
        grid.add_column(width=label, no_wrap=True, style="bold")
        grid.add_column(overflow="fold")
        for header, cell in zip(headers, r, strict=True):
            grid.add_row(header, cell)
        out.print(grid)


def emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def human_size(size: float | None) -> str:
    if size is None:
        return "-"
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"
