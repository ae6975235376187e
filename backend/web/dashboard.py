"""The dashboard (/): health, rollback mode, what is on, what changed, what waits for a
restart, and latency and errors against flag changes (the chart of /timeline)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import select

from backend.api.deps import RuntimeDep, SessionsDep
from backend.api.health import database_health
from backend.flags import current
from backend.flags.models import AuditEvent
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
        chart = flag_chart(s)
    return page(
        request,
        "dashboard.html",
        who=who,
        database=database_health(sessions),
        flag_health=runtime.health(),
        rollback_mode=runtime.rollback_mode,
        snapshot=snap,
        flags_on=[f for f in snap.flags.values() if f.enabled],
        pending=[f for f in snap.flags.values() if f.pending_restart],
        recent=recent,
        chart=chart,
        minutes=60,
    )
