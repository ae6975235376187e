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

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, func, insert, inspect, make_url, select, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from backend.core.config import Settings
from backend.core.primary_file import Backend
from backend.db import divergence
from backend.db.divergence import APPEND_ONLY, BACKEND_NAMES
from backend.db.init_db import alembic_config, upgrade_schema
from backend.db.reads import one_snapshot
from backend.db.session import make_engine
from backend.db.tables import app_tables, row_counts
from backend.flags.audit import verify_chain

Mode = Literal["copied", "adopted", "nothing"]
ProgressFn = Callable[[str, int, int], None]
BATCH = 1000


class CopyRefused(Exception):
    """The copy was not made (or not kept): one line saying why and what to run."""


@dataclass(frozen=True)
class TableCopy:
    name: str
    source_rows: int
    target_rows: int


@dataclass(frozen=True)
class CopyReport:
    source: str  # URL with the password hidden
    target: str
    mode: Mode  # copied: target replaced; adopted: target already held it all; nothing: equal
    tables: tuple[TableCopy, ...]
    audit_events: int
    audit_verified: bool
    seconds: float
    dry_run: bool
    backup: Path | None  # the previous SQLite file, kept (SQLite target only)

    @property
    def rows(self) -> int:
        return sum(t.source_rows for t in self.tables)


def shown(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


def backend_of_url(url: str) -> Backend:
    return "postgresql" if make_url(url).get_backend_name() == "postgresql" else "sqlite"


@dataclass(frozen=True)
class Snapshot:
    """Every row of the source, read in one transaction."""

    rows: dict[str, list[dict[str, Any]]]

    def counts(self) -> dict[str, int]:
        return {name: len(rows) for name, rows in self.rows.items()}


@dataclass(frozen=True)
class Job:
    """One copy: what `copy_database` was asked, and the source as it read it."""

    settings: Settings
    source_url: str
    target_url: str
    source: Connection  # still in its read snapshot
    snapshot: Snapshot
    dry_run: bool
    progress: ProgressFn | None
    started: float

    @property
    def source_shown(self) -> str:
        return shown(self.source_url)

    def report(
        self,
        mode: Mode,
        target_counts: dict[str, int],
        *,
        events: int,
        verified: bool,
        backup: Path | None = None,
    ) -> CopyReport:
        return CopyReport(
            source=shown(self.source_url),
            target=shown(self.target_url),
            mode=mode,
            tables=tuple(
                TableCopy(name, len(rows), target_counts.get(name, 0))
                for name, rows in self.snapshot.rows.items()
            ),
            audit_events=events,
            audit_verified=verified,
            seconds=round(time.perf_counter() - self.started, 3),
            dry_run=self.dry_run,
            backup=backup,
        )


@contextlib.contextmanager
def read_snapshot(engine: Engine) -> Iterator[Connection]:
    """A connection whose reads all see one snapshot, even while others write."""
    with Session(engine) as session, one_snapshot(session):
        yield session.connection()


def read_all(conn: Connection) -> Snapshot:
    return Snapshot(
        {t.name: [dict(r._mapping) for r in conn.execute(select(t))] for t in app_tables()}
    )


def has_schema(conn: Connection) -> bool:
    return bool(inspect(conn).has_table("flag_store"))


def target_counts(conn: Connection) -> dict[str, int]:
    return row_counts(conn) if has_schema(conn) else {}


def _seed_only(snapshot: Snapshot) -> bool:
    """What `db init` writes and nothing else: flags never changed (no audit event), the first
    admin and its token, no provider, credential, rollback or AWS run."""
    c = snapshot.counts()
    return (
        all(c[name] == 0 for name in APPEND_ONLY)
        and c["users"] <= 1
        and c["api_tokens"] <= 1
        and c["providers"] == 0
        and c["aws_credentials"] == 0
    )


def _same_rows(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> bool:
    return len(a) == len(b) and sorted(map(repr, a)) == sorted(map(repr, b))


def decide(job: Job, target: Connection) -> Mode:
    """Which copy the target needs; CopyRefused when both sides hold rows the other lacks."""
    if not has_schema(target) or target.execute(text("SELECT 1 FROM flag_store")).first() is None:
        return "copied"  # a target never set up: nothing on it to lose
    div = divergence.compare(job.source, target)
    src_b, tgt_b = divergence.backend_of(job.source), divergence.backend_of(target)
    if div.diverged:
        raise CopyRefused(
            f"{divergence.describe(tgt_b, src_b, div.target_only)}: run "
            f"`pcm-ops db sync --from {tgt_b}` first"
        )
    if div.source_only.total == 0 and (div.target_only.total > 0 or _seed_only(job.snapshot)):
        return "adopted"
    there = read_all(target).rows
    if all(_same_rows(rows, there[name]) for name, rows in job.snapshot.rows.items()):
        return "nothing"
    return "copied"


def insert_rows(conn: Connection, job: Job) -> None:
    """Every row, parents before children, in batches (one executemany each)."""
    for table in app_tables():
        rows = job.snapshot.rows[table.name]
        for start in range(0, len(rows), BATCH):
            conn.execute(insert(table), rows[start : start + BATCH])
            if job.progress is not None:
                job.progress(table.name, min(start + BATCH, len(rows)), len(rows))


def check_counts(conn: Connection, snapshot: Snapshot) -> dict[str, int]:
    want, got = snapshot.counts(), row_counts(conn)
    wrong = [f"{n} {want[n]} → {got.get(n)}" for n in want if got.get(n) != want[n]]
    if wrong:
        raise CopyRefused(f"row counts differ after the copy ({', '.join(wrong)}): not kept")
    return got


def check_chain(session: Session, settings: Settings) -> int:
    """The audit chain verifies with the data directory's keys and checkpoints, as `pcm-ops
    audit verify` checks it; returns its number of events."""
    from backend.security.audit_keys import audit_anchor
    from backend.security.credentials_crypto import KeyRingError

    anchor = None
    with contextlib.suppress(KeyRingError, OSError):  # then keyed events show unverifiable
        anchor = audit_anchor(settings)
    chain = verify_chain(session, anchor=anchor)
    if not chain.ok:
        problems = "; ".join(chain.problems[:3])
        raise CopyRefused(f"the audit chain does not verify on the copy ({problems}): not kept")
    return chain.events


def _reset_sequences(conn: Connection) -> None:
    """Each serial sequence past the ids copied in, so that the next insert gets a new id."""
    for table in app_tables():
        pk = list(table.primary_key.columns)
        if len(pk) != 1 or pk[0].name != "id" or pk[0].autoincrement is not True:
            continue
        top = conn.execute(select(func.max(pk[0]))).scalar_one()
        conn.execute(
            text("SELECT setval(pg_get_serial_sequence(:t, 'id'), :v, :called)"),
            {"t": table.name, "v": top or 1, "called": top is not None},
        )


def _copy_to_postgres(job: Job) -> CopyReport:
    engine = make_engine(job.target_url, busy_timeout=job.settings.database_busy_timeout)
    names = ", ".join(t.name for t in app_tables())
    try:
        if not job.dry_run:
            upgrade_schema(engine)
        with engine.connect() as conn, conn.begin() as tx:
            if not job.dry_run:
                # Writers wait (readers do not) from the decision to the commit.
                conn.execute(text(f"LOCK TABLE {names} IN EXCLUSIVE MODE"))
            mode = decide(job, conn)
            if mode != "copied" or job.dry_run:
                counts = target_counts(conn)
                tx.rollback()
                return job.report(mode, counts, events=0, verified=False)
            conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
            insert_rows(conn, job)
            _reset_sequences(conn)
            counts = check_counts(conn, job.snapshot)
            with conn.begin_nested():  # verify_chain's session ends this savepoint, not the copy
                events = check_chain(Session(conn), job.settings)
            tx.commit()
    finally:
        engine.dispose()
    return job.report("copied", counts, events=events, verified=True)


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
    source_backend = backend_of_url(source_url)
    if source_backend == backend_of_url(target_url):
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
                return _copy_to_postgres(job)
            from backend.db.sqlite_copy import copy_to_sqlite

            return copy_to_sqlite(job)
    except SQLAlchemyError as exc:
        problem = f"{type(exc).__name__}: {exc}".splitlines()[0]
        raise CopyRefused(f"the copy failed, nothing changed: {problem}") from exc
    finally:
        source_engine.dispose()
