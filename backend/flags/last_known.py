"""Flag rows as the snapshot builder reads them, and the durable last-known-state file that
lets a process serve flags while the database cannot be read."""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import NamedTuple

from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.flags.models import FlagRow
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
    updated_at: datetime
    updated_by: str


_COLUMNS = [getattr(FlagRow, field) for field in FlagRecord._fields]


def read_records(session: Session) -> list[FlagRecord]:
    """Every stored flag, by name, in one column select."""
    return [FlagRecord(*row) for row in session.execute(select(*_COLUMNS).order_by(FlagRow.name))]


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
            updated_at=datetime.fromisoformat(f.updated_at),
            updated_by=f.updated_by,
        )
        for f in snap.flags.values()
    ]


def save(path: Path, version: int, records: Iterable[FlagRecord]) -> None:
    """Write the state atomically (temp file + rename); a failure is logged, never raised."""
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
                "updated_at": r.updated_at.isoformat(),
                "updated_by": r.updated_by,
            }
            for r in records
        },
    }
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(data))
        os.replace(tmp, path)
    except OSError as exc:
        log.warning("could not write last-known flag state %s: %s", path, exc)


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
                updated_at=datetime.fromisoformat(f["updated_at"]),
                updated_by=str(f["updated_by"]),
            )
            for name, f in data["flags"].items()
        ]
        return int(data["version"]), records
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.error("last-known flag state %s is unreadable: %s", path, exc)
        return None
