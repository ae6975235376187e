"""What a copy between the SQLite file and PostgreSQL is made of, whichever way it goes: its
report and its refusal, the source read in one snapshot, the decision (copied, adopted,
nothing, or refused on diverged append-only tables), the inserts and the checks the target
must pass before the copy is kept. backend.db.transfer puts them together."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import Engine, Table, insert, inspect, select, text
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from backend.core.config import Settings
from backend.db import divergence
from backend.db.divergence import APPEND_ONLY
from backend.db.reads import one_snapshot
from backend.db.session import shown_url
from backend.db.tables import app_tables, row_counts
from backend.flags.audit import verify_chain
from backend.flags.audit_anchor import AuditAnchor
from backend.flags.checkpoints import CheckpointLog
from backend.flags.models import AuditEvent

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
        return shown_url(self.source_url)

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
            source=shown_url(self.source_url),
            target=shown_url(self.target_url),
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
    """Every row, parents before children, in batches: COPY on PostgreSQL, one executemany
    each on SQLite."""
    for table in app_tables():
        rows = job.snapshot.rows[table.name]
        for start in range(0, len(rows), BATCH):
            batch = rows[start : start + BATCH]
            if conn.dialect.name == "postgresql":
                _copy_in(conn, table, batch)
            else:
                conn.execute(insert(table), batch)
            if job.progress is not None:
                job.progress(table.name, min(start + BATCH, len(rows)), len(rows))


def _copy_in(conn: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    """COPY on the transaction's own connection, each value converted by its column type as an
    INSERT would convert it (UTC timestamps, JSON): several times faster than the INSERTs
    for the audit trail and the AWS runs' result tables."""
    columns = list(table.columns)
    convert = [c.type._cached_bind_processor(conn.dialect) for c in columns]
    names = ", ".join(f'"{c.name}"' for c in columns)
    driver: Any = conn.connection.driver_connection
    with driver.cursor() as cursor, cursor.copy(f"COPY {table.name} ({names}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(
                [
                    row[c.name] if f is None else f(row[c.name])
                    for c, f in zip(columns, convert, strict=True)
                ]
            )


def check_counts(conn: Connection, snapshot: Snapshot) -> dict[str, int]:
    want, got = snapshot.counts(), row_counts(conn)
    wrong = [f"{n} {want[n]} → {got.get(n)}" for n in want if got.get(n) != want[n]]
    if wrong:
        raise CopyRefused(f"row counts differ after the copy ({', '.join(wrong)}): not kept")
    return got


def check_chain(session: Session, settings: Settings) -> int:
    """The copied audit chain verifies: every event's link and hash (HMAC under the data
    directory's audit keys), the store's head and count, and each signed checkpoint that falls
    within it. Checkpoints past its end are not held against it: the copy is of a snapshot,
    and the server may have appended events since (`pcm-ops audit verify` checks those on the
    live database). Returns the number of events."""
    from backend.security.audit_keys import audit_anchor
    from backend.security.credentials_crypto import KeyRingError

    anchor = None
    with contextlib.suppress(KeyRingError, OSError):  # then keyed events show unverifiable
        anchor = audit_anchor(settings)
    # `within`: read what the session sees, the copy's own transaction before it commits.
    keys_only = AuditAnchor(anchor.keys, None) if anchor else None
    chain = verify_chain(session, anchor=keys_only, within=True)
    problems = list(chain.problems)
    if anchor is not None and anchor.checkpoints is not None:
        problems += _checkpoint_problems(session, anchor.checkpoints, chain.events)
    if problems:
        shown_problems = "; ".join(problems[:3])
        raise CopyRefused(
            f"the audit chain does not verify on the copy ({shown_problems}): not kept"
        )
    return chain.events


def _checkpoint_problems(session: Session, log: CheckpointLog, events: int) -> list[str]:
    read = log.read()
    problems = list(read.problems)
    for cp in read.checkpoints:
        if not 0 < cp.events <= events:
            continue
        head = session.scalar(
            select(AuditEvent.hash).order_by(AuditEvent.id).offset(cp.events - 1).limit(1)
        )
        if head != cp.head:
            problems.append(f"checkpoint of {cp.at} does not match event {cp.events}")
    return problems
