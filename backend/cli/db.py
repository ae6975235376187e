"""`pcm-ops db init|backup|restore|verify|list|prune|copy|status` and `pcm-ops rollback db`."""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, Progress, TaskProgressColumn, TimeRemainingColumn
from sqlalchemy.exc import SQLAlchemyError

from backend.cli import server as server_cmd
from backend.cli.console import (
    FAILED,
    REFUSED,
    UNREACHABLE,
    JsonOpt,
    backup_exit,
    console,
    emit_json,
    err,
    fail,
    human_size,
    load_settings,
    print_table,
)
from backend.cli.db_copy import db_copy, db_status
from backend.cli.records import add_record
from backend.core.config import Settings
from backend.core.filemodes import tighten_private_dirs
from backend.db import backup
from backend.db.backup import BackupError
from backend.db.outage import first_line

db_app = typer.Typer(help="Back up, restore and check the database.", no_args_is_help=True)
db_app.command("copy")(db_copy)
db_app.command("status")(db_status)

# Below this size a backup takes well under a second: no progress bar.
PROGRESS_FROM_BYTES = 64 * 1024 * 1024

StopOpt = Annotated[
    bool, typer.Option("--stop", help="Stop the running server first (and start it again after).")
]
NoStartOpt = Annotated[
    bool, typer.Option("--no-start", help="Leave the server stopped after the restore.")
]
ReasonOpt = Annotated[str, typer.Option("--reason", "-r", help="Why (kept in the record).")]


@contextlib.contextmanager
def progress_bar(settings: Settings, label: str) -> Iterator[backup.Progress | None]:
    """A progress bar on stderr for large databases in a terminal; None otherwise."""
    db_file = settings.sqlite_path if settings.database_url is None else None
    size = db_file.stat().st_size if db_file is not None and db_file.exists() else 0
    if size < PROGRESS_FROM_BYTES or not err.is_terminal:
        yield None
        return
    columns = ("{task.description}", BarColumn(), TaskProgressColumn(), TimeRemainingColumn())
    with Progress(*columns, console=err, transient=True) as bar:
        task = bar.add_task(label, total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update


@db_app.command("init")
def db_init() -> None:
    """Create or upgrade the schema and seed defaults (idempotent)."""
    from backend.db.init_db import init_db

    s = load_settings()
    tighten_private_dirs(s)  # left 0644/0755 by older versions
    try:
        report = init_db(s)
    except SQLAlchemyError as exc:
        fail(f"cannot set up the database: {first_line(exc)}", UNREACHABLE)
    console.print(f"Database ready: {report.database}")
    if report.admin_token_created:
        console.print(f"Created an admin API token in {report.admin_token_path} (mode 0600).")
    for line in report.login_hint(s.base_url):
        console.print(line, markup=False)


@db_app.command("backup")
def db_backup(
    note: Annotated[str, typer.Option(help="A note kept with the backup.")] = "",
    as_json: JsonOpt = False,
) -> None:
    """Back up the database online (the server may keep running), verified and recorded."""
    s = load_settings()
    try:
        with progress_bar(s, "backing up") as progress:
            info = backup.take_backup(s, note=note, progress=progress)
    except BackupError as exc:
        backup_exit(exc)
    path = s.backup_dir / info.file
    if as_json:
        emit_json({**info.as_dict(), "path": str(path)})
        return
    console.print(f"✅ Backup written: {path}", markup=False)
    console.print(
        f"   {human_size(info.size)}, sha256 {info.sha256}, integrity {info.integrity}, "
        f"schema {','.join(info.schema) or '-'}, {info.duration_ms:.0f} ms"
    )


@db_app.command("verify")
def db_verify(
    file: Annotated[
        str | None, typer.Argument(help="A backup to check; without it, the live database.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Check a backup (integrity, schema, recorded SHA-256) or the live database (+ audit chain)."""
    s = load_settings()
    if file is not None:
        try:
            report = backup.check_backup(s, backup.resolve(s, file))
        except BackupError as exc:
            backup_exit(exc)
        out = {
            "ok": True,
            "path": str(report.path),
            "size": report.size,
            "sha256": report.sha256,
            "sha256_recorded": report.recorded is not None,
            "integrity": report.inspection.integrity,
            "schema": report.inspection.schema,
            "flags": report.inspection.flags,
        }
    else:
        out = live_check(s)
    if as_json:
        emit_json(out)
    else:
        for key, value in out.items():
            console.print(f"{key}: {value}", markup=False)
        console.print("✅ verified" if out["ok"] else "❌ verification failed")
    raise typer.Exit(0 if out["ok"] else FAILED)


def live_check(s: Settings) -> dict[str, Any]:
    """Integrity of the live database and of the audit chain."""
    from backend.db.session import engine_for, session_factory
    from backend.flags.audit import verify_chain
    from backend.security.audit_keys import audit_anchor
    from backend.security.credentials_crypto import KeyRingError

    out: dict[str, Any] = {"ok": False, "database": s.effective_database_url.split("?")[0]}
    try:
        inspection = backup.backup_engine(s).inspect_live()
    except BackupError as exc:
        return {**out, "integrity": str(exc)}
    out.update(integrity=inspection.integrity, schema=inspection.schema, flags=inspection.flags)
    engine = engine_for(s, create=False)
    try:
        anchor = None
        with contextlib.suppress(KeyRingError, OSError):  # then keyed events show unverifiable
            anchor = audit_anchor(s)
        with session_factory(engine)() as session:
            chain = verify_chain(session, anchor=anchor)
    except Exception as exc:  # a damaged database fails here in many ways
        return {**out, "audit_chain": f"unreadable: {exc}".splitlines()[0]}
    finally:
        engine.dispose()
    out["audit_chain"] = f"{chain.events} events, " + (
        "intact" if chain.ok else "; ".join(chain.problems)
    )
    out["audit_checked"] = chain.checked
    if chain.warnings:
        out["audit_warnings"] = chain.warnings
    if not chain.ok:
        out["audit_first_bad_event"] = chain.first_bad_event
        out["audit_failed_anchors"] = chain.failed_anchors
    out["ok"] = chain.ok
    return out


@db_app.command("list")
def db_list(as_json: JsonOpt = False) -> None:
    """Backups, newest first: recorded ones, and files in data/ that have no record."""
    s = load_settings()
    items = backup.list_backups(s)
    if as_json:
        emit_json(
            [
                {
                    "file": i.file,
                    "status": i.status,
                    "size": i.size,
                    **({"record": i.info.as_dict()} if i.info else {}),
                }
                for i in items
            ]
        )
        return
    rows = []
    for i in items:
        created = (
            datetime.fromisoformat(i.info.created_at).astimezone().strftime("%Y-%m-%d %H:%M:%S")
            if i.info
            else (datetime.fromtimestamp(i.mtime).strftime("%Y-%m-%d %H:%M:%S") if i.mtime else "")
        )
        rows.append(
            (
                i.file,
                i.status,
                created,
                i.info.kind if i.info else "",
                human_size(i.size),
                i.info.sha256[:12] if i.info else "",
                i.info.note if i.info else "",
            )
        )
    headers = ("file", "status", "created", "kind", "size", "sha256", "note")
    print_table(headers, rows, ids={"file", "sha256"})
    console.print(f"{len(items)} backup(s) in {s.backup_dir}")


@db_app.command("prune")
def db_prune(
    keep: Annotated[int, typer.Option("--keep", min=0, help="How many of the newest to keep.")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only say what would go.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Delete all but the newest N backups (files and records)."""
    s = load_settings()
    gone = backup.prune_backups(s, keep=keep, dry_run=dry_run)
    if as_json:
        emit_json({"deleted" if not dry_run else "would_delete": gone, "kept": keep})
        return
    verb = "would delete" if dry_run else "deleted"
    for name in gone:
        console.print(f"  {verb} {name}", markup=False)
    console.print(f"{len(gone)} backup(s) {verb}; the newest {keep} kept")


def restore(
    file: str, *, stop: bool, no_start: bool, reason: str, as_json: bool, method: str
) -> None:
    """Check the backup, stop the server if allowed, back up, swap, record, start again."""
    s = load_settings()
    started = time.perf_counter()
    try:
        path = backup.resolve(s, file)
        backup.check_backup(s, path)  # refuse a bad file before touching the server
    except BackupError as exc:
        backup_exit(exc)
    pid = server_cmd.running_pid(s)
    if pid is not None and not stop:
        fail(
            f"refused: the server is running (pid {pid}); stop it first (./stop.sh) "
            "or pass --stop to have it stopped and started again",
            REFUSED,
        )
    if pid is not None:
        s = server_cmd.restart_settings(s)  # started again on the address it has now
        server_cmd.stop(s, quiet=as_json)
    try:
        with progress_bar(s, "backing up the current database") as progress:
            report = backup.restore_backup(s, path, progress=progress)
    except BackupError as exc:
        if pid is not None and not no_start:  # nothing was swapped: bring the server back
            _start_again(s, quiet=True)
        backup_exit(exc)
    try:
        _restart_audit_checkpoints(s, path.name)
    except Exception as exc:  # the database is back; verify will say what it cannot prove
        err.print(f"[yellow]could not re-anchor the audit checkpoints: {exc}[/yellow]")
    try:
        record_id: int | None = add_record(
            s,
            feature="database",
            trigger=reason or f"restore {path.name}",
            method=method,
            duration_ms=(time.perf_counter() - started) * 1000,
            verification="success" if report.integrity.startswith("ok") else "failed",
            changes=[
                {
                    "restored_from": path.name,
                    "pre_restore_backup": report.pre_restore.file if report.pre_restore else None,
                    "preserved": [str(p) for p in report.preserved],
                }
            ],
        )
    except Exception as exc:  # the database is back; the record is secondary
        err.print(f"[yellow]could not store the rollback record: {exc}[/yellow]")
        record_id = None
    restarted: int | None = None
    if pid is not None and not no_start:
        restarted = _start_again(s, quiet=as_json)
    out = {
        "ok": restarted in (None, 0),
        "restored_from": str(path),
        "pre_restore_backup": report.pre_restore.file if report.pre_restore else None,
        "preserved": [str(p) for p in report.preserved],
        "integrity": report.integrity,
        "record_id": record_id,
        "server_restarted": restarted == 0 if restarted is not None else None,
        "duration_ms": round((time.perf_counter() - started) * 1000, 1),
    }
    if as_json:
        emit_json(out)
    else:
        console.print(f"✅ Database restored from {path.name}", markup=False)
        if report.pre_restore:
            console.print(f"   the previous database is kept as {report.pre_restore.file}")
        for kept in report.preserved:
            console.print(f"   the damaged database's files are kept as {kept}", markup=False)
        console.print(f"   integrity {report.integrity}, rollback record {record_id}")
        if pid is None or no_start:
            console.print("   server not started: ./start.sh (it upgrades the schema if needed)")
    raise typer.Exit(0 if out["ok"] else FAILED)


def _restart_audit_checkpoints(s: Settings, backup_name: str) -> None:
    """The restored database's audit chain is shorter than the checkpoints say: record, signed,
    that it went back on purpose, so that verify holds it to its own head from now on."""
    from backend.db.session import engine_for, session_factory
    from backend.security.audit_keys import restart_checkpoints

    engine = engine_for(s, create=False)
    try:
        restart_checkpoints(s, session_factory(engine), f"restored from {backup_name}")
    finally:
        engine.dispose()


def _start_again(s: Settings, *, quiet: bool) -> int:
    """Start the server; with --json its messages go to stderr, keeping stdout parseable."""
    if not quiet:
        console.print("Starting the server again…")
        return server_cmd.start(s)
    with contextlib.redirect_stdout(sys.stderr):
        return server_cmd.start(s)


@db_app.command("restore")
def db_restore(
    file: Annotated[str, typer.Argument(help="Backup file name (in data/) or path.")],
    stop: StopOpt = False,
    no_start: NoStartOpt = False,
    reason: ReasonOpt = "",
    as_json: JsonOpt = False,
) -> None:
    """Restore a backup: refuses a corrupt or foreign file, backs up the current database first,
    swaps atomically; refuses while the server runs unless --stop."""
    restore(file, stop=stop, no_start=no_start, reason=reason, as_json=as_json, method="database")


def rollback_db(
    file: Annotated[str, typer.Argument(help="Backup file name (in data/) or path.")],
    stop: StopOpt = False,
    no_start: NoStartOpt = False,
    reason: ReasonOpt = "",
    as_json: JsonOpt = False,
) -> None:
    """Roll the database back to a backup (the runbook's "Database Rollback", as `db restore`)."""
    restore(file, stop=stop, no_start=no_start, reason=reason, as_json=as_json, method="database")
