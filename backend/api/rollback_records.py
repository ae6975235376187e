"""/api/rollback-records: the runbook's rollback log entries."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query
from sqlalchemy import func, select

from backend.api.deps import DbDep, Offset, RowId, Viewer
from backend.api.responses import AUTHENTICATED, NOT_FOUND
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
    total = db.scalar(select(func.count()).select_from(RollbackRecord)) or 0
    rows = db.scalars(
        select(RollbackRecord).order_by(RollbackRecord.id.desc()).limit(limit).offset(offset)
    )
    return {"total": total, "items": [record_out(r) for r in rows]}


@router.get("/{record_id}", responses=NOT_FOUND)
def get_record(record_id: RowId, _: Viewer, db: DbDep) -> dict[str, Any]:
    row = db.get(RollbackRecord, record_id)
    if row is None:
        raise HTTPException(404, f"no rollback record {record_id}")
    return record_out(row)
