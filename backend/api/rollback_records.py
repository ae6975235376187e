"""/api/rollback-records: the runbook's rollback log entries, and their acknowledgement."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query
from sqlalchemy import func, select

from backend.api.deps import DbDep, Offset, Operator, RowId, SessionsDep, Viewer
from backend.api.responses import AUTHENTICATED, NOT_FOUND
from backend.flags.acknowledgements import acknowledge, unacknowledged_emergency
from backend.flags.models import RollbackRecord
from backend.flags.reports import log_entry, record_as_dict

router = APIRouter(
    prefix="/api/rollback-records", tags=["rollback records"], responses=AUTHENTICATED
)


def record_out(r: RollbackRecord) -> dict[str, Any]:
    record = record_as_dict(r)
    return {**record, "log_entry": log_entry(record)}


@router.get("")
def list_records(
    _: Viewer,
    db: DbDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    offset: Offset = 0,
) -> dict[str, Any]:
    """Newest first; `unacknowledged_emergency` is the latest emergency rollback while nobody
    has acknowledged it (the console shows it in a banner), else null."""
    total = db.scalar(select(func.count()).select_from(RollbackRecord)) or 0
    rows = db.scalars(
        select(RollbackRecord).order_by(RollbackRecord.id.desc()).limit(limit).offset(offset)
    ).unique()
    pending = unacknowledged_emergency(db)
    return {
        "total": total,
        "unacknowledged_emergency": record_out(pending) if pending else None,
        "items": [record_out(r) for r in rows],
    }


@router.get("/{record_id}", responses=NOT_FOUND)
def get_record(record_id: RowId, _: Viewer, db: DbDep) -> dict[str, Any]:
    row = db.get(RollbackRecord, record_id)
    if row is None:
        raise HTTPException(404, f"no rollback record {record_id}")
    return record_out(row)


@router.post("/{record_id}/acknowledge", responses=NOT_FOUND)
def acknowledge_record(record_id: RowId, who: Operator, sessions: SessionsDep) -> dict[str, Any]:
    """Say the rollback has been seen: stored once (who, when), logged; the console's banner
    goes. Acknowledging again returns the first acknowledgement (`already_acknowledged`)."""
    done = acknowledge(sessions, record_id=record_id, actor=who.name, method="api")
    return done.as_dict()
