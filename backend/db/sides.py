"""The two databases side by side, for `pcm-ops db status`: which one is the primary, whether
each answers, its schema revision, its main row counts and audit head, and what each holds
that the other lacks (backend.db.divergence).

Read-only: a missing SQLite file is reported, never created; an unreachable side is reported,
never an error.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

from alembic.migration import MigrationContext
from sqlalchemy import func, select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError

from backend.core.config import Settings
from backend.core.primary_file import Backend, PrimaryState, other, read
from backend.db import divergence
from backend.db.copy_job import has_schema, read_snapshot
from backend.db.session import backend_of, existing_sqlite_url, make_engine, shown_url
from backend.db.tables import app_tables
from backend.flags.models import FlagStoreRow

# The tables whose counts say at a glance whether two sides hold the same data.
MAIN_TABLES = (
    "users",
    "api_tokens",
    "providers",
    "aws_credentials",
    "feature_flags",
    "flag_audit_events",
    "rollback_records",
    "aws_tool_runs",
)


@dataclass(frozen=True)
class Side:
    backend: Backend
    url: str | None  # password hidden; None: not configured
    reachable: bool = False
    problem: str = ""
    revision: tuple[str, ...] = ()
    counts: dict[str, int] = field(default_factory=dict)
    audit_head: str = ""
    audit_events: int = 0
    # Rows of the append-only tables this side holds and the other side lacks.
    only_here: dict[str, int] | None = None


@dataclass(frozen=True)
class DatabaseStatus:
    primary: Backend
    pinned_by: str | None  # DATABASE_URL (password hidden) when it pins the database
    state: PrimaryState
    sides: tuple[Side, Side]

    def side(self, backend: Backend) -> Side:
        return next(s for s in self.sides if s.backend == backend)


def _url_of(settings: Settings, backend: Backend) -> str | None:
    if backend == "postgresql":
        return settings.postgres_url
    path = settings.sqlite_path
    return existing_sqlite_url(path) if path.exists() else None


@contextlib.contextmanager
def _opened(settings: Settings, url: str) -> Iterator[Connection]:
    engine = make_engine(url, busy_timeout=settings.database_busy_timeout)
    try:
        with read_snapshot(engine) as conn:
            yield conn
    finally:
        engine.dispose()


def _describe(conn: Connection, backend: Backend, url: str) -> Side:
    revision = tuple(sorted(MigrationContext.configure(conn).get_current_heads()))
    if not has_schema(conn):
        return Side(backend, url, reachable=True, problem="no schema (run `pcm-ops db init`)")
    tables = {t.name: t for t in app_tables()}
    counts = {
        name: int(conn.execute(select(func.count()).select_from(tables[name])).scalar_one())
        for name in MAIN_TABLES
    }
    store = conn.execute(
        select(FlagStoreRow.audit_head, FlagStoreRow.audit_count).where(FlagStoreRow.id == 1)
    ).first()
    return Side(
        backend,
        url,
        reachable=True,
        revision=revision,
        counts=counts,
        audit_head=(store[0] or "") if store else "",
        audit_events=int(store[1]) if store else 0,
    )


def database_status(settings: Settings) -> DatabaseStatus:
    """Both sides as they are now; never raises for a side that does not answer."""
    state = read(settings.primary_state_file)
    pinned = settings.database_url
    primary: Backend = backend_of(pinned) if pinned else state.backend
    if primary == "postgresql" and not pinned and not settings.postgres_url:
        primary = "sqlite"  # effective_database_url falls back on the file
    sides: list[Side] = []
    with contextlib.ExitStack() as stack:
        conns: dict[Backend, Connection] = {}
        for backend in ("sqlite", "postgresql"):
            sides.append(_side(settings, backend, stack, conns))
        if len(conns) == 2 and all(s.revision for s in sides):
            try:
                div = divergence.compare(conns[primary], conns[other(primary)])
            except SQLAlchemyError:
                div = None
            if div is not None:
                sides = [
                    _with_only(s, div.source_only if s.backend == primary else div.target_only)
                    for s in sides
                ]
    return DatabaseStatus(
        primary=primary,
        pinned_by=shown_url(pinned) if pinned else None,
        state=state,
        sides=(sides[0], sides[1]),
    )


def _with_only(side: Side, missing: divergence.Missing) -> Side:
    return replace(side, only_here=dict(missing.counts))


def _side(
    settings: Settings,
    backend: Backend,
    stack: contextlib.ExitStack,
    conns: dict[Backend, Connection],
) -> Side:
    url = _url_of(settings, backend)
    if url is None:
        problem = (
            "PCM_POSTGRES_URL is not set"
            if backend == "postgresql"
            else f"no database file at {settings.sqlite_path}"
        )
        return Side(backend, None, problem=problem)
    label = shown_url(url) if backend == "postgresql" else str(Path(settings.sqlite_path))
    try:
        conn = stack.enter_context(_opened(settings, url))
        side = _describe(conn, backend, label)
    except SQLAlchemyError as exc:
        problem = f"{type(exc).__name__}: {exc}".splitlines()[0]
        return Side(backend, label, problem=f"unreachable: {problem}")
    conns[backend] = conn
    return side
