"""The rollback journal: rollbacks made while the database is unreachable, kept in a durable
local file (one JSON line each, fsync'd) and replayed into the store, once, when it returns.

Only changes toward rollback values are journaled: they commute, so the journal can be laid
over any stored state (the last-known file or a freshly read store) and gives the same answer.
Writers and the replay take one flock on a lock file beside the journal, so that no entry is
appended between the replay's read and its rename of the journal.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session

from backend.flags import service
from backend.flags.errors import FlagNotFound
from backend.flags.models import AuditEvent, RollbackRecord

log = logging.getLogger("pcm_ops_tools.flags")

ALL = "ALL"
# The replayed reason carries the entry id: a replay skips ids the store already holds, so a
# crash between the commit and the journal's rename never applies an entry twice.
_MARKER = "journal entry "
_MARKER_RE = re.compile(r"journal entry (j-[0-9a-f]{16})")


@dataclass(frozen=True, slots=True)
class JournalEntry:
    """One rollback (or disabling toggle) made while the store was unreachable."""

    id: str
    at: datetime
    actor: str
    method: str
    reason: str
    kind: str  # "rollback" or "toggle"
    names: tuple[str, ...] | None  # None: every flag (an emergency rollback)
    enabled: bool | None = None  # the toggled value (always the flag's rollback value)

    def covers(self, name: str) -> bool:
        return self.names is None or name in self.names

    def to_json(self) -> str:
        return json.dumps(
            {
                "id": self.id,
                "at": self.at.isoformat(),
                "actor": self.actor,
                "method": self.method,
                "reason": self.reason,
                "kind": self.kind,
                "names": ALL if self.names is None else list(self.names),
                "enabled": self.enabled,
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, line: str) -> JournalEntry:
        data = json.loads(line)
        names = data["names"]
        return cls(
            id=str(data["id"]),
            at=datetime.fromisoformat(data["at"]),
            actor=str(data["actor"]),
            method=str(data["method"]),
            reason=str(data["reason"]),
            kind=str(data["kind"]),
            names=None if names == ALL else tuple(str(n) for n in names),
            enabled=data.get("enabled"),
        )


def new_entry(
    *,
    kind: str,
    names: list[str] | None,
    actor: str,
    method: str,
    reason: str,
    enabled: bool | None = None,
) -> JournalEntry:
    return JournalEntry(
        id=f"j-{secrets.token_hex(8)}",
        at=datetime.now(UTC),
        actor=actor,
        method=method,
        reason=reason,
        kind=kind,
        names=None if names is None else tuple(sorted(set(names))),
        enabled=enabled,
    )


# SQLite: SQLITE_BUSY and SQLITE_LOCKED (extended codes keep them in the low byte).
_SQLITE_BUSY_CODES = {5, 6}
_SQLITE_BUSY_TEXT = ("database is locked", "database table is locked", "database is busy")
# PostgreSQL: lock_timeout (lock_not_available), serialization_failure, deadlock_detected.
_PG_BUSY_STATES = {"55P03", "40001", "40P01"}


def store_busy(exc: BaseException) -> bool:
    """Whether `exc` says another connection holds a lock: contention, not an outage."""
    orig = getattr(exc, "orig", exc)
    code = getattr(orig, "sqlite_errorcode", None)
    if isinstance(code, int) and code & 0xFF in _SQLITE_BUSY_CODES:
        return True
    if getattr(orig, "sqlstate", None) in _PG_BUSY_STATES:
        return True
    if getattr(orig, "pgcode", None) in _PG_BUSY_STATES:
        return True
    text = str(orig).lower()
    return any(t in text for t in _SQLITE_BUSY_TEXT)


def store_unreachable(exc: SQLAlchemyError) -> bool:
    """Whether `exc` says the database cannot be reached (as opposed to a bug, bad data, or
    a lock another connection holds: see store_busy)."""
    if store_busy(exc):
        return False
    if isinstance(exc, (OperationalError, InterfaceError)):
        return True
    return isinstance(exc, DBAPIError) and exc.connection_invalidated


# -- the file ------------------------------------------------------------------------------
def lock_path(path: Path) -> Path:
    return path.with_name(f"{path.stem}.lock")


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold the journal's lock (across processes) for the block."""
    fd = os.open(lock_path(path), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _fsync_dir(path: Path) -> None:
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def append(path: Path, entry: JournalEntry) -> None:
    """Add `entry` durably: it is on disk when this returns."""
    with locked(path):
        created = not path.exists()
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, (entry.to_json() + "\n").encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        if created:
            _fsync_dir(path)


def signature(path: Path | None) -> tuple[int, int, int] | None:
    """What changes when the journal does (inode, size, mtime); None when there is none."""
    if path is None:
        return None
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def read(path: Path | None) -> list[JournalEntry]:
    """The journal's entries; an unfinished or unreadable line is skipped, loudly."""
    if path is None:
        return []
    try:
        text = path.read_text()
    except FileNotFoundError:
        return []
    entries: list[JournalEntry] = []
    for number, line in enumerate(text.splitlines(keepends=True), start=1):
        if not line.endswith("\n"):
            break  # being written right now: the next read sees it whole
        try:
            entries.append(JournalEntry.from_json(line))
        except (ValueError, KeyError, TypeError) as exc:
            log.error("rollback journal %s line %d is unreadable, skipped: %s", path, number, exc)
    return entries


def archive(path: Path) -> Path:
    """Move the journal aside (atomically) once its entries are in the store."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    target = path.with_name(f"{path.stem}.applied-{stamp}{path.suffix}")
    os.replace(path, target)
    _fsync_dir(path)
    return target


# -- replay into the store -----------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Superseded:
    """A flag a journal entry left alone: the store holds a change to it made after the entry."""

    flag: str
    version: int
    actor: str
    at: datetime

    def describe(self) -> str:
        at = self.at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        return f"{self.flag} superseded by version {self.version} ({self.actor} at {at})"


@dataclass(frozen=True, slots=True)
class Replayed:
    """One journal entry put into the store: its rollback record and what it left alone."""

    entry: JournalEntry
    record_id: int
    superseded: tuple[Superseded, ...] = ()


def replayed_reason(entry: JournalEntry, superseded: tuple[Superseded, ...] = ()) -> str:
    at = entry.at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    skipped = "".join(f"; not applied to {s.describe()}" for s in superseded)
    suffix = f"(journaled while the database was down at {at}{skipped}; {_MARKER}{entry.id})"
    return f"{entry.reason} {suffix}" if entry.reason else suffix


def applied_ids(session: Session) -> set[str]:
    """Journal entry ids the store already holds (in rollback records or audit reasons)."""
    found: set[str] = set()
    like = f"%{_MARKER}j-%"
    for text in session.scalars(
        select(RollbackRecord.trigger).where(RollbackRecord.trigger.like(like))
    ):
        found.update(_MARKER_RE.findall(text))
    for text in session.scalars(select(AuditEvent.reason).where(AuditEvent.reason.like(like))):
        found.update(_MARKER_RE.findall(text))
    return found


def later_changes(session: Session, entry: JournalEntry) -> tuple[Superseded, ...]:
    """The flags `entry` covers that the store changed after the entry was acknowledged (its
    `at` against the audit events' `at`, both taken on the application's clock), with the
    latest such change each. Replayed journal entries do not count: they only ever move flags
    to their rollback values, so they never contradict one another."""
    stmt = (
        select(AuditEvent.flag_name, AuditEvent.version, AuditEvent.actor, AuditEvent.at)
        .where(AuditEvent.at > entry.at, AuditEvent.reason.not_like(f"%{_MARKER}j-%"))
        .order_by(AuditEvent.id)
    )
    if entry.names is not None:
        stmt = stmt.where(AuditEvent.flag_name.in_(entry.names))
    latest: dict[str, Superseded] = {}
    for name, version, actor, at in session.execute(stmt):
        latest[name] = Superseded(name, version, actor, at)
    return tuple(latest[n] for n in sorted(latest))


def replay(session: Session, entries: list[JournalEntry]) -> list[Replayed]:
    """Apply the entries the store does not hold yet, in order, on the caller's transaction.

    Each entry (an emergency or flag rollback, or a disabling toggle) becomes a rollback of
    its flags with audit events and a rollback record; flags changed in the store after the
    entry was acknowledged are left as they are, and the record says so ("not applied to …:
    superseded by version …"), so that a replay never overwrites a later acknowledged change."""
    done = applied_ids(session)
    applied: list[Replayed] = []
    for entry in entries:
        if entry.id in done:
            continue
        superseded = later_changes(session, entry)
        try:
            with session.begin_nested():
                # A journaled toggle only ever moves its flag to the rollback value.
                outcome = service.rollback_flags(
                    session,
                    names=None if entry.names is None else list(entry.names),
                    actor=entry.actor,
                    method=entry.method,
                    reason=replayed_reason(entry, superseded),
                    exclude={s.flag for s in superseded},
                    # An acknowledged rollback gets its record even when nothing needed
                    # changing: it carries the entry's id, so that it is never replayed twice.
                    record_unchanged=True,
                )
        except FlagNotFound as exc:
            log.error("journaled rollback %s not replayed: %s", entry.id, exc)
            continue
        # The set-based rollback updates rows behind the ORM's back: reload them for the next.
        session.expire_all()
        done.add(entry.id)
        assert outcome.record_id is not None  # record_unchanged
        applied.append(Replayed(entry, outcome.record_id, superseded))
    return applied
