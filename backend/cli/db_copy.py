"""`pcm-ops db copy` and `pcm-ops db status`: move the data between the SQLite file and
PostgreSQL by hand, and see where each side stands (registered on `db` by backend.cli.db)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from enum import StrEnum
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress

from backend.cli.console import (
    BAD_INPUT,
    FAILED,
    JsonOpt,
    console,
    emit_json,
    err,
    fail,
    load_settings,
    print_table,
)
from backend.core import primary_file
from backend.core.config import Settings
from backend.core.primary_file import other
from backend.db.copy_job import ProgressFn
from backend.db.divergence import BACKEND_NAMES
from backend.db.session import backend_of
from backend.db.sides import MAIN_TABLES, DatabaseStatus, Side, database_status
from backend.db.transfer import CopyRefused, CopyReport, copy_database


class Target(StrEnum):
    postgresql = "postgresql"
    sqlite = "sqlite"


ToOpt = Annotated[Target, typer.Option("--to", help="The side to copy the primary database to.")]
DryRunOpt = Annotated[
    bool, typer.Option("--dry-run", help="Only say what the copy would do; change nothing.")
]


def _urls(s: Settings, to: Target) -> tuple[str, str]:
    """(source, target): the primary now and the other side; exits 2 when that is not a copy."""
    if s.database_url:
        fail(
            "DATABASE_URL pins the database, so there is no primary to copy from: unset it "
            "(PCM_POSTGRES_URL names the PostgreSQL side)",
            BAD_INPUT,
        )
    if not s.postgres_url:
        fail("set PCM_POSTGRES_URL first (postgresql+psycopg://user@host/db)", BAD_INPUT)
    source = s.effective_database_url
    if backend_of(source) == to.value:
        fail(
            f"{BACKEND_NAMES[to.value]} is the primary already:"
            f" copy it with --to {other(to.value)}",
            BAD_INPUT,
        )
    return source, s.postgres_url if to is Target.postgresql else s.sqlite_url


@contextlib.contextmanager
def _progress() -> Iterator[ProgressFn | None]:
    """A bar per table on stderr in a terminal; nothing otherwise."""
    if not err.is_terminal:
        yield None
        return
    columns = ("{task.description}", BarColumn(), MofNCompleteColumn())
    with Progress(*columns, console=err, transient=True) as bar:
        tasks: dict[str, Any] = {}

        def update(table: str, done: int, total: int) -> None:
            if table not in tasks:
                tasks[table] = bar.add_task(table, total=total)
            bar.update(tasks[table], completed=done, total=total)

        yield update


def _copy_json(report: CopyReport) -> dict[str, Any]:
    return {
        "ok": True,
        "source": report.source,
        "target": report.target,
        "mode": report.mode,
        "dry_run": report.dry_run,
        "rows": report.rows,
        "tables": [
            {"name": t.name, "source_rows": t.source_rows, "target_rows": t.target_rows}
            for t in report.tables
        ],
        "audit_events": report.audit_events,
        "audit_verified": report.audit_verified,
        "seconds": report.seconds,
        "backup": str(report.backup) if report.backup else None,
    }


VERDICT = {
    "copied": "copied",
    "adopted": "not copied: the target already holds everything the source has",
    "nothing": "not copied: both sides hold the same data",
}


def _print_copy(report: CopyReport) -> None:
    console.print(f"{report.source} → {report.target}", markup=False)
    rows = [(t.name, str(t.source_rows), str(t.target_rows)) for t in report.tables]
    target_header = "target now" if report.dry_run or report.mode != "copied" else "target"
    print_table(("table", "source", target_header), rows, ids={"table"})
    if report.dry_run:
        console.print(f"dry run: would be {VERDICT[report.mode]}; nothing changed")
    elif report.mode == "copied":
        console.print(f"✅ {report.rows} rows copied in {report.seconds:.2f} s")
        console.print(f"   audit chain verified ({report.audit_events} events)")
    else:
        console.print(f"✅ {VERDICT[report.mode]} ({report.seconds:.2f} s)")
    if report.backup is not None:
        console.print(f"   the previous SQLite file is kept as {report.backup.name}", markup=False)
    if report.mode == "copied" and not report.dry_run:
        console.print(
            "   the primary is unchanged: the postgresql_support flag and a restart switch it"
        )


def db_copy(to: ToOpt, dry_run: DryRunOpt = False, as_json: JsonOpt = False) -> None:
    """Copy the primary database to the other side (SQLite ⇄ PostgreSQL), verified: row counts
    and the audit chain on the target. Refuses when the target holds changes the primary lacks.
    Does not change which side is the primary."""
    s = load_settings()
    source, target = _urls(s, to)
    try:
        with _progress() as progress:
            report = copy_database(
                s, source_url=source, target_url=target, dry_run=dry_run, progress=progress
            )
    except CopyRefused as exc:
        if as_json:
            emit_json({"ok": False, "error": str(exc)})
            raise typer.Exit(FAILED) from None
        fail(f"refused: {exc}", FAILED)
    if report.mode != "adopted" and not report.dry_run:
        _note_synced(s)
    if as_json:
        emit_json(_copy_json(report))
    else:
        _print_copy(report)


def _note_synced(s: Settings) -> None:
    """Both sides hold the same data now: the primary file says so (and that nothing written
    on PostgreSQL is missing any more)."""
    state = primary_file.read(s.primary_state_file)
    primary_file.write(
        s.primary_state_file, state.but(synced_at=primary_file.now_iso(), unsynced_since=None)
    )


def _side_json(side: Side) -> dict[str, Any]:
    return {
        "backend": side.backend,
        "url": side.url,
        "reachable": side.reachable,
        "problem": side.problem or None,
        "revision": list(side.revision),
        "counts": side.counts,
        "audit_head": side.audit_head or None,
        "audit_events": side.audit_events,
        "only_here": side.only_here,
    }


def _status_json(status: DatabaseStatus) -> dict[str, Any]:
    return {
        "primary": status.primary,
        "pinned_by": status.pinned_by,
        "switched_at": status.state.switched_at,
        "synced_at": status.state.synced_at,
        "unsynced_since": status.state.unsynced_since,
        "note": status.state.note or None,
        "sides": {side.backend: _side_json(side) for side in status.sides},
    }


def _cell(side: Side, name: str) -> str:
    if not side.reachable or not side.counts:
        return "-"
    only = (side.only_here or {}).get(name)
    return f"{side.counts[name]}" + (f" (+{only} only here)" if only else "")


def _print_status(status: DatabaseStatus) -> None:
    pin = f" (pinned by DATABASE_URL={status.pinned_by})" if status.pinned_by else ""
    console.print(f"primary: {BACKEND_NAMES[status.primary]}{pin}", markup=False)
    state = status.state
    console.print(f"last synced: {state.synced_at or 'never'}", markup=False)
    if state.unsynced_since:
        console.print(
            f"[yellow]unsynced since {state.unsynced_since}: writes made on PostgreSQL are not "
            "in the SQLite file yet (pcm-ops db sync --from postgresql)[/yellow]"
        )
    if state.note:
        console.print(f"last switch: {state.note}", markup=False)
    sides = status.sides
    rows: list[tuple[str, ...]] = [
        ("where", *(s.url or "-" for s in sides)),
        ("reachable", *(("yes" if s.reachable else "no") for s in sides)),
        ("problem", *(s.problem or "" for s in sides)),
        ("revision", *(",".join(s.revision) or "-" for s in sides)),
        ("audit head", *((s.audit_head[:12] or "-") for s in sides)),
        *((name, *(_cell(s, name) for s in sides)) for name in MAIN_TABLES),
    ]
    print_table(("", *(s.backend for s in sides)), rows, ids={""})
    for side in sides:
        only = sum((side.only_here or {}).values())
        if only:
            console.print(
                f"{BACKEND_NAMES[side.backend]} holds {only} change(s) the other side lacks",
                markup=False,
            )


def db_status(as_json: JsonOpt = False) -> None:
    """Which database is the primary, both sides (reachable, revision, row counts, audit
    head) and what is unsynced between them. An unreachable side is reported, not an error."""
    status = database_status(load_settings())
    if as_json:
        emit_json(_status_json(status))
    else:
        _print_status(status)
