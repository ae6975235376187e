"""/timeline: latency and errors against flag changes over a chosen range; `flag_chart` also
draws the dashboard's chart."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse
from sqlalchemy.orm import Session

from backend.api.deps import SessionsDep
from backend.flags.history import changes_since
from backend.flags.models import AuditEvent
from backend.metrics.recorder import timeline
from backend.web.access import PageViewer
from backend.web.chart import DEFAULT_RANGE, RANGES, ChartSet, Marker, build_charts
from backend.web.templating import page

router = APIRouter(include_in_schema=False)
RangeKey = Literal["15m", "1h", "6h", "24h"]


def markers_of(events: list[AuditEvent]) -> list[Marker]:
    """One marker per flag change, and one per rollback for all the flags it changed."""
    markers: list[Marker] = []
    rollbacks: dict[int, list[AuditEvent]] = {}
    for e in events:
        if e.rollback_record_id is None:
            state = "on" if e.new_value else "off"
            markers.append(
                Marker(
                    e.at,
                    f"{e.flag_name} {state}",
                    f"{e.at:%H:%M:%S} UTC: {e.flag_name} {state} by {e.actor} ({e.method})"
                    + (f": {e.reason}" if e.reason else ""),
                )
            )
        else:
            rollbacks.setdefault(e.rollback_record_id, []).append(e)
    for record_id, group in rollbacks.items():
        first = group[0]
        emergency = first.method == "emergency"
        kind = "emergency rollback" if emergency else "rollback"
        flags = ", ".join(f"{e.flag_name} {'on' if e.new_value else 'off'}" for e in group)
        markers.append(
            Marker(
                first.at,
                f"{kind} #{record_id}",
                f"{first.at:%H:%M:%S} UTC: {kind} #{record_id} by {first.actor}"
                + (f": {first.reason}" if first.reason else "")
                + f" ({flags})",
                emergency=emergency,
                changes=len(group),
            )
        )
    return sorted(markers, key=lambda m: m.at)


def flag_chart(s: Session, range_key: str = DEFAULT_RANGE, now: datetime | None = None) -> ChartSet:
    """The chart of the last `range_key` (a key of RANGES), fitted to the data inside it."""
    now = now or datetime.now(UTC)
    since = now - RANGES[range_key][0]
    return build_charts(
        timeline(s, since=since),
        markers_of(changes_since(s, since)),
        now=now,
        range_key=range_key,
    )


@router.get("/timeline", response_class=HTMLResponse)
def timeline_page(
    request: Request,
    who: PageViewer,
    sessions: SessionsDep,
    range_key: Annotated[
        RangeKey, Query(alias="range", description="how far back: 15m, 1h, 6h or 24h")
    ] = DEFAULT_RANGE,
) -> HTMLResponse:
    with sessions() as s:
        chart = flag_chart(s, range_key)
    return page(request, "timeline.html", who=who, chart=chart, chart_url="/timeline")
