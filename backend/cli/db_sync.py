"""`pcm-ops db sync --from postgresql|sqlite`: bring into the primary database what was written
on the other one since the two were last in step (backend.db.merge does the work).

The runbook's case: PostgreSQL went down, `postgresql_support` was rolled back, the app came up
on SQLite; once PostgreSQL answers again, `pcm-ops db sync --from postgresql` brings back its
writes and clears the "unsynced" warning of the primary file (and so of /api/health)."""

from __future__ import annotations

import logging
from datetime import datetime
from enum import StrEnum
from typing import Annotated, NoReturn

import typer
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from backend.cli.client import cli_actor
from backend.cli.console import (
    BAD_INPUT,
    FAILED,
    REFUSED,
    UNREACHABLE,
    JsonOpt,
    console,
    emit_json,
    fail,
    load_settings,
    print_table,
)
from backend.cli.db import db_app
from backend.core import primary_file
from backend.core.config import Settings
from backend.core.primary_file import Backend
from backend.db.merge import (
    OriginUnreachable,
    SyncError,
    SyncRefused,
    SyncReport,
    sync_databases,
)
from backend.db.outage import first_line
from backend.db.session import (
    backend_of,
    engine_for,
    existing_sqlite_url,
    make_engine,
    session_factory,
    shown_url,
)
from backend.security.audit_keys import anchor_sessions
from backend.security.credentials_crypto import KeyRingError

log = logging.getLogger("pcm_ops_tools.db")


class Side(StrEnum):
    postgresql = "postgresql"
    sqlite = "sqlite"


FromOpt = Annotated[
    Side,
    typer.Option(
        "--from",
        help="The database to bring writes back from: the one that is not the primary.",
        case_sensitive=False,
    ),
]
DryRunOpt = Annotated[
    bool, typer.Option("--dry-run", help="Say what would be merged; change nothing.")
]


@db_app.command("sync")
def db_sync(origin: FromOpt, dry_run: DryRunOpt = False, as_json: JsonOpt = False) -> None:
    """Bring into the primary database what was written on the other one since the last
    sync: idempotent, one transaction, the audit chain verified before it commits."""
    s = load_settings()
    origin_name: Backend = origin.value
    local_name = backend_of(s.effective_database_url)
    if local_name == origin_name:
        fail(
            f"the {origin_name} database is the primary: sync brings writes from the other "
            f"one (--from {'sqlite' if origin_name == 'postgresql' else 'postgresql'})",
            BAD_INPUT,
        )
    source = _origin_engine(s, origin_name)
    local = engine_for(s, create=False)
    try:
        sessions = session_factory(local)
        try:
            anchor_sessions(sessions, s)
        except (KeyRingError, OSError) as exc:
            fail(f"cannot load the audit keys: {exc}", FAILED)
        since = _last_synced(s, local_name, origin_name)
        report = _run(sessions, source, local_name, origin_name, since, dry_run)
    finally:
        local.dispose()
        source.dispose()
    if not dry_run:
        _mark_synced(s, local_name, origin_name)
        log.info(
            "Database sync from %s into %s: %d rows merged or updated, %d audit events "
            "appended, flags updated: %s, audit chain verified (%d events)",
            origin_name,
            local_name,
            report.changed,
            report.audit_events_appended,
            ", ".join(report.flags_updated) or "none",
            report.chain_events,
        )
    _show(report, shown_url(_origin_url(s, origin_name)), as_json)


def _run(
    sessions: sessionmaker[Session],
    source: Engine,
    local_name: Backend,
    origin_name: Backend,
    since: datetime | None,
    dry_run: bool,
) -> SyncReport:
    try:
        return sync_databases(
            sessions,
            source,
            local_name=local_name,
            origin_name=origin_name,
            actor=cli_actor(),
            since=since,
            dry_run=dry_run,
        )
    except SyncError as exc:
        _sync_exit(exc)
    except SQLAlchemyError as exc:  # the primary itself, before the merge began
        fail(f"cannot reach the primary ({local_name}) database: {first_line(exc)}", UNREACHABLE)


def _sync_exit(exc: SyncError) -> NoReturn:
    if isinstance(exc, OriginUnreachable):
        fail(f"{exc}; nothing was changed (run the sync again once it answers)", FAILED)
    if isinstance(exc, SyncRefused):
        fail(f"refused: {exc}", REFUSED)
    fail(f"{exc}; nothing was changed", FAILED)


def _origin_url(s: Settings, origin: Backend) -> str:
    if origin == "sqlite":
        return s.sqlite_url
    if not s.postgres_url:
        fail("PCM_POSTGRES_URL is not set: there is no PostgreSQL database to sync from", BAD_INPUT)
    return s.postgres_url


def _origin_engine(s: Settings, origin: Backend) -> Engine:
    """An engine on the origin that never creates it: a missing SQLite file fails to open."""
    url = existing_sqlite_url(s.sqlite_path) if origin == "sqlite" else _origin_url(s, origin)
    return make_engine(url, busy_timeout=s.database_busy_timeout)


def _from_postgres_into_file(s: Settings, local: Backend, origin: Backend) -> bool:
    """The runbook's direction: PostgreSQL's writes into the SQLite file the primary file
    describes (DATABASE_URL, when set, pins another database the file says nothing of)."""
    return local == "sqlite" and origin == "postgresql" and not s.database_url


def _last_synced(s: Settings, local: Backend, origin: Backend) -> datetime | None:
    """When PostgreSQL's rows were last all in the SQLite file (the primary file's
    synced_at): older rows missing here were deleted here. None when unknown."""
    if not _from_postgres_into_file(s, local, origin):
        return None
    synced_at = primary_file.read(s.primary_state_file).synced_at
    try:
        return datetime.fromisoformat(synced_at) if synced_at else None
    except ValueError:
        return None


def _mark_synced(s: Settings, local: Backend, origin: Backend) -> None:
    """After PostgreSQL's writes are back in the SQLite primary, the sides are in step: the
    primary file's "unsynced" mark (shown by /api/health) is cleared."""
    if not _from_postgres_into_file(s, local, origin):
        return
    state = primary_file.read(s.primary_state_file)
    primary_file.write(
        s.primary_state_file,
        state.but(unsynced_since=None, synced_at=primary_file.now_iso()),
    )


def _show(report: SyncReport, origin_url: str, as_json: bool) -> None:
    if as_json:
        emit_json({**report.as_dict(), "origin_url": origin_url})
        return
    verb = "would merge" if report.dry_run else "merged"
    console.print(f"Sync from {report.origin} ({origin_url}) into {report.local}:", markup=False)
    rows = [
        (name, *map(str, (t.origin_rows, t.already_here, t.merged, t.updated, t.deleted_here)))
        for name, t in report.tables.items()
    ]
    headers = ("table", "origin rows", "already here", "added", "updated", "deleted here")
    print_table(headers, rows, ids={"table"})
    flags = ", ".join(report.flags_updated) or "none"
    console.print(f"flags taken from {report.origin}: {flags}", markup=False)
    console.print(
        f"audit chain: {report.audit_events_appended} events appended, "
        f"{report.chain_events} events verified"
    )
    if report.dry_run:
        console.print(f"dry run: {report.changed} row(s) {verb}; nothing was changed")
    elif report.changed or report.audit_events_appended:
        console.print(f"✅ {report.changed} row(s) {verb}, audit chain verified")
    else:
        console.print("✅ nothing to merge: the primary has every row of the origin")
