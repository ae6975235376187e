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


def store_unreachable(exc: SQLAlchemyError) -> bool:
    """Whether `exc` says the database cannot be reached (as opposed to a bug or bad data)."""
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
def replayed_reason(entry: JournalEntry) -> str:
    at = entry.at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    suffix = f"(journaled while the database was down at {at}; {_MARKER}{entry.id})"
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


def replay(session: Session, entries: list[JournalEntry]) -> list[JournalEntry]:
    """Apply the entries the store does not hold yet, in order, on the caller's transaction."""
    done = applied_ids(session)
    applied: list[JournalEntry] = []
    for entry in entries:
        if entry.id in done:
            continue
        try:
            with session.begin_nested():
                if entry.kind == "toggle" and entry.names and entry.enabled is not None:
                    service.set_flag(
                        session,
                        name=entry.names[0],
                        enabled=entry.enabled,
                        actor=entry.actor,
                        method=entry.method,
                        reason=replayed_reason(entry),
                    )
                else:
                    service.rollback_flags(
                        session,
                        names=None if entry.names is None else list(entry.names),
                        actor=entry.actor,
                        method=entry.method,
                        reason=replayed_reason(entry),
                    )
        except FlagNotFound as exc:
            log.error("journaled rollback %s not replayed: %s", entry.id, exc)
            continue
        # The set-based rollback updates rows behind the ORM's back: reload them for the next.
        session.expire_all()
        done.add(entry.id)
        applied.append(entry)
    return applied
