"""Copy the whole database between the SQLite file and PostgreSQL, verified, all or nothing.

The copy is what moves the data when `postgresql_support` switches the primary database, and
what `pcm-ops db copy` runs by hand. The source is read in one snapshot and never changed. The
target gets the schema from the same Alembic migrations, then every row of every table; row
counts and the audit hash chain are verified on the target before anything becomes visible:
PostgreSQL in one transaction (a kill halfway leaves it as it was), SQLite as a new file that
replaces the old one atomically, the old one kept as a backup (backend.db.sqlite_copy).

Which way a copy may go is decided on the append-only tables (backend.db.divergence): a target
holding rows the source lacks is never overwritten.
"""

from __future__ import annotations

import time

import psycopg
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError

from backend.core.config import Settings
from backend.db.copy_job import (
    CopyRefused,
    CopyReport,
    Job,
    ProgressFn,
    TableCopy,
    has_schema,
    read_all,
    read_snapshot,
)
from backend.db.divergence import BACKEND_NAMES
from backend.db.init_db import alembic_config
from backend.db.pg_copy import copy_to_postgres
from backend.db.session import backend_of, make_engine
from backend.db.sqlite_copy import copy_to_sqlite

__all__ = ["CopyRefused", "CopyReport", "TableCopy", "copy_database"]


def _at_head(conn: Connection) -> bool:
    heads = ScriptDirectory.from_config(alembic_config()).get_heads()
    return set(MigrationContext.configure(conn).get_current_heads()) == set(heads)


def copy_database(
    settings: Settings,
    *,
    source_url: str,
    target_url: str,
    dry_run: bool = False,
    progress: ProgressFn | None = None,
) -> CopyReport:
    """Make the target hold what the source holds, or raise CopyRefused saying why (then
    neither side changed). `progress(table, done, total)` is called as rows go in."""
    started = time.perf_counter()
    source_backend = backend_of(source_url)
    if source_backend == backend_of(target_url):
        raise CopyRefused(f"source and target are both {BACKEND_NAMES[source_backend]}")
    source_engine = make_engine(source_url, busy_timeout=settings.database_busy_timeout)
    try:
        with read_snapshot(source_engine) as source:
            if not has_schema(source) or not _at_head(source):
                raise CopyRefused(
                    f"{BACKEND_NAMES[source_backend]} is not at the current schema: "
                    "run `pcm-ops db init` on it first"
                )
            job = Job(
                settings,
                source_url,
                target_url,
                source,
                read_all(source),
                dry_run,
                progress,
                started,
            )
            if source_backend == "sqlite":
                return copy_to_postgres(job)
            return copy_to_sqlite(job)
    except (SQLAlchemyError, psycopg.Error, OSError) as exc:
        problem = f"{type(exc).__name__}: {exc}".splitlines()[0]
        raise CopyRefused(f"the copy failed, nothing changed: {problem}") from exc
    finally:
        source_engine.dispose()
