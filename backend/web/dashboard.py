"""The dashboard (/) and the timeline (/timeline): health, rollback mode, what is on, what
changed, what waits for a restart, and latency and errors against flag changes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.api.deps import RuntimeDep, SessionsDep
from backend.api.health import database_health
from backend.flags import current
from backend.flags.journal import ALL
from backend.flags.models import AuditEvent, RollbackRecord
from backend.metrics.recorder import timeline
from backend.web.access import PageViewer
from backend.web.chart import Chart, Marker, build_chart
from backend.web.templating import page

router = APIRouter(include_in_schema=False)


def flag_chart(s: Session, minutes: int) -> Chart:
    end = datetime.now(UTC)
    start = end - timedelta(minutes=minutes)
    events = s.scalars(select(AuditEvent).where(AuditEvent.at >= start).order_by(AuditEvent.id))
    markers = [
        Marker(
            e.at,
            f"{e.flag_name} {'on' if e.new_value else 'off'} by {e.actor} ({e.method})",
            e.method == "emergency",
        )
        for e in events
    ]
    return build_chart(timeline(s, since=start), markers, start=start, end=end)


@router.get("/", response_class=HTMLResponse)
def dashboard(
    request: Request, who: PageViewer, runtime: RuntimeDep, sessions: SessionsDep
) -> HTMLResponse:
    snap = current()
    with sessions() as s:
        recent = list(s.scalars(select(AuditEvent).order_by(AuditEvent.id.desc()).limit(10)))
        last_emergency = s.scalars(
            select(RollbackRecord)
            .where(RollbackRecord.feature == ALL)
            .order_by(RollbackRecord.id.desc())
            .limit(1)
        ).first()
        chart = flag_chart(s, 60)
    return page(
        request,
        "dashboard.html",
        who=who,
        database=database_health(sessions),
        flag_health=runtime.health(),
        snapshot=snap,
        last_emergency=last_emergency,
        flags_on=[f for f in snap.flags.values() if f.enabled],
        pending=[f for f in snap.flags.values() if f.pending_restart],
        recent=recent,
        chart=chart,
        minutes=60,
    )


@router.get("/timeline", response_class=HTMLResponse)
def timeline_page(
    request: Request,
    who: PageViewer,
    sessions: SessionsDep,
    minutes: Annotated[int, Query(ge=5, le=7 * 24 * 60)] = 60,
) -> HTMLResponse:
    with sessions() as s:
        chart = flag_chart(s, minutes)
    return page(request, "timeline.html", who=who, chart=chart, minutes=minutes)
