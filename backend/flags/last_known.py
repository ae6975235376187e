"""Flag rows as the snapshot builder reads them, and the durable last-known-state file that
lets a process serve flags while the database cannot be read."""

from __future__ import annotations

import json
import logging
import os
import re
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import NamedTuple

from sqlalchemy import String, select, type_coerce
from sqlalchemy.orm import Session

from backend.flags.models import FlagRow, FlagStoreRow
from backend.flags.snapshot import Snapshot

log = logging.getLogger("pcm_ops_tools.flags")


class FlagRecord(NamedTuple):
    """One stored flag: plain values, cheap to read in bulk (no ORM object per flag)."""

    name: str
    enabled: bool
    rollback_value: bool
    requires_restart: bool
    description: str
    phase: int
    risk: str
    updated_at: str  # ISO 8601, UTC offset included
    updated_by: str


def iso_utc(value: datetime | str) -> str:
    """A stored timestamp as ISO 8601 in UTC, always with microseconds. SQLite hands back its
    text form (UTC, no zone: "2026-11-26 13:58:01.198570", rewritten without parsing it);
    PostgreSQL a datetime."""
    if isinstance(value, str):
        if len(value) == 26 and value[10] == " " and value[19] == ".":
            return f"{value[:10]}T{value[11:]}+00:00"
        value = datetime.fromisoformat(value)
    value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return value.isoformat(timespec="microseconds")


# The timestamp is read as the driver gives it, without the column type's conversion to a
# datetime (a third of the read's cost for a thousand flags): iso_utc makes it the string the
# snapshot serves.
_COLUMNS = [
    type_coerce(FlagRow.updated_at, String) if field == "updated_at" else getattr(FlagRow, field)
    for field in FlagRecord._fields
]


def read_since(session: Session, since: int) -> tuple[int | None, list[FlagRecord]]:
    """The store's version and the flags written after version `since` (every flag when
    `since` < 0), by name; (None, []) when the store is not initialised.

    One statement, so that the version and the rows come from one committed state even under
    PostgreSQL's READ COMMITTED, where each statement sees its own."""
    stmt = (
        select(FlagStoreRow.version, *_COLUMNS)
        .select_from(FlagStoreRow)
        .outerjoin(FlagRow, FlagRow.version > since)
        .where(FlagStoreRow.id == 1)
        .order_by(FlagRow.name)
    )
    result = session.execute(stmt).all()
    if not result:
        return None, []
    return result[0][0], [
        FlagRecord(n, e, rv, rr, d, p, r, iso_utc(at), by)
        for _, n, e, rv, rr, d, p, r, at, by in result
        if n is not None
    ]


def records_of(snap: Snapshot) -> list[FlagRecord]:
    """The stored side of a served snapshot, to save when no fresher read is at hand."""
    return [
        FlagRecord(
            name=f.name,
            enabled=f.stored_enabled,
            rollback_value=f.rollback_value,
            requires_restart=f.requires_restart,
            description=f.description,
            phase=f.phase,
            risk=f.risk,
            updated_at=f.updated_at,
            updated_by=f.updated_by,
        )
        for f in snap.flags.values()
    ]


_HEAD = re.compile(rb'^\{"version": (\d+),')


def saved_version(path: Path | None) -> int | None:
    """The version the state file holds, from its first bytes (no parse of the flags)."""
    if path is None:
        return None
    try:
        with path.open("rb") as f:
            head = _HEAD.match(f.read(40))
    except OSError:
        return None
    return int(head.group(1)) if head else None


def save(path: Path, version: int, records: Iterable[FlagRecord]) -> bool:
    """Write the state atomically (temp file + rename); a failure is logged, never raised.

    "version" is the first key, so that saved_version reads it without parsing the file."""
    data = {
        "version": version,
        "saved_at": time.time(),
        "flags": {
            r.name: {
                "stored_enabled": r.enabled,
                "rollback_value": r.rollback_value,
                "requires_restart": r.requires_restart,
                "description": r.description,
                "phase": r.phase,
                "risk": r.risk,
                "updated_at": r.updated_at,
                "updated_by": r.updated_by,
            }
            for r in records
        },
    }
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        # Owner-only, like everything in the data directory, whatever the process umask.
        with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as fh:
            fh.write(json.dumps(data))
        os.replace(tmp, path)
    except OSError as exc:
        log.warning("could not write last-known flag state %s: %s", path, exc)
        return False
    return True


def load(path: Path | None) -> tuple[int, list[FlagRecord]] | None:
    """The saved version and flags, or None when there is no readable file."""
    if path is None or not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
        records = [
            FlagRecord(
                name=name,
                enabled=bool(f["stored_enabled"]),
                rollback_value=bool(f["rollback_value"]),
                requires_restart=bool(f["requires_restart"]),
                description=str(f["description"]),
                phase=int(f["phase"]),
                risk=str(f["risk"]),
                updated_at=iso_utc(str(f["updated_at"])),
                updated_by=str(f["updated_by"]),
            )
            for name, f in data["flags"].items()
        ]
        return int(data["version"]), records
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.error("last-known flag state %s is unreadable: %s", path, exc)
        return None
