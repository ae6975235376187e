"""/api/metrics/timeline: request latency and error rate per minute, beside flag changes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query
from sqlalchemy import select

from backend.api.deps import DbDep, Viewer
from backend.api.responses import AUTHENTICATED
from backend.flags.models import AuditEvent
from backend.metrics.recorder import timeline

router = APIRouter(prefix="/api/metrics", tags=["metrics"], responses=AUTHENTICATED)


@router.get("/timeline")
def metrics_timeline(
    _: Viewer, db: DbDep, minutes: Annotated[int, Query(ge=5, le=7 * 24 * 60)] = 60
) -> dict[str, Any]:
    since = datetime.now(UTC) - timedelta(minutes=minutes)
    points = timeline(db, since=since)
    changes = db.scalars(select(AuditEvent).where(AuditEvent.at >= since).order_by(AuditEvent.id))
    return {
        "since": since.isoformat(),
        "points": [
            {
                "minute": p.minute.isoformat(),
                "requests": p.requests,
                "errors": p.errors,
                "error_rate": round(p.error_rate, 4),
                "mean_ms": round(p.mean_ms, 2),
                "p95_ms": p.p95_ms,
                "max_ms": round(p.max_ms, 2),
            }
            for p in points
        ],
        "flag_changes": [
            {
                "at": e.at.isoformat(),
                "flag": e.flag_name,
                "from": e.old_value,
                "to": e.new_value,
                "actor": e.actor,
                "method": e.method,
            }
            for e in changes
        ],
    }
