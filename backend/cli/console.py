"""The terminal side of the toolkit commands: consoles, settings, JSON output, exit codes.

Exit codes: 0 ok, 1 a check or verification failed, 2 bad input or a rejected file,
3 not found or not running, 4 refused (would lose work or data), 5 store unreachable.
"""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

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
