"""The dashboard (/): health, rollback mode, what is on, what changed, what waits for a
restart, and latency and errors against flag changes (the chart of /timeline)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import select

from backend.api.deps import RuntimeDep, SessionsDep
from backend.api.health import database_health
from backend.flags import current
from backend.flags.journal import ALL
from backend.flags.models import AuditEvent, RollbackRecord
from backend.web.access import PageViewer
from backend.web.templating import page
from backend.web.timeline import flag_chart

router = APIRouter(include_in_schema=False)


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
        chart = flag_chart(s)
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
