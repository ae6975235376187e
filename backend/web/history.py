"""/history: audit events and rollback records, filtered and exported as CSV; /records/{id}:
one record with the runbook's log entry and communication message filled in."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.api.deps import RowId, RuntimeDep, SessionsDep
from backend.api.health import database_health
from backend.api.rollback_records import record_out
from backend.core.csv_export import csv_text
from backend.flags.history import PAGE_SIZE, HistoryFilter, filter_choices, history_page
from backend.flags.models import AuditEvent, RollbackRecord
from backend.flags.reports import communication, log_entry
from backend.metrics.recorder import timeline
from backend.web.access import PageViewer
from backend.web.templating import page

router = APIRouter(include_in_schema=False)


def _moment(raw: str | None, field: str) -> datetime | None:
    if not raw:
        return None
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        raise HTTPException(
            422, f"{field}: {raw!r} is not a date or time (use YYYY-MM-DD or YYYY-MM-DDTHH:MM)"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _precision(raw: str, moment: datetime) -> timedelta:
    """How much time a typed moment stands for: `To 16:05` means up to the end of 16:05."""
    if not re.search(r"\d[T ]\d", raw):
        return timedelta(days=1)
    if moment.microsecond:
        return timedelta(microseconds=1)
    return timedelta(seconds=1) if moment.second else timedelta(minutes=1)


class Filters:
    """The history's query string: filters (in UTC unless the time carries an offset) and the
    page cursor."""

    def __init__(
        self,
        flag: Annotated[str | None, Query(max_length=100)] = None,
        actor: Annotated[str | None, Query(max_length=200)] = None,
        method: Annotated[str | None, Query(max_length=20)] = None,
        since: Annotated[str | None, Query(max_length=40)] = None,
        until: Annotated[str | None, Query(max_length=40)] = None,
    ) -> None:
        self.flag, self.actor, self.method = flag or None, actor or None, method or None
        self.since_raw, self.until_raw = since or "", until or ""
        self.since = _moment(since, "since")
        end = _moment(until, "until")
        self.until = end + _precision(self.until_raw, end) if end else None
        if self.since and self.until and self.until <= self.since:
            raise HTTPException(422, "until: must be later than since")

    def domain(self) -> HistoryFilter:
        return HistoryFilter(self.flag, self.actor, self.method, self.since, self.until)

    def query(self, **cursor: int) -> str:
        """The filters as a query string, plus a page cursor."""
        pairs = {
            "flag": self.flag,
            "actor": self.actor,
            "method": self.method,
            "since": self.since_raw,
            "until": self.until_raw,
            **cursor,
        }
        text = urlencode({k: v for k, v in pairs.items() if v})
        return f"?{text}" if text else ""


@router.get("/history", response_class=HTMLResponse)
def history_page_view(
    request: Request,
    _: PageViewer,
    sessions: SessionsDep,
    filters: Annotated[Filters, Depends()],
    before: Annotated[int | None, Query(ge=1, description="older than this event id")] = None,
    after: Annotated[int | None, Query(ge=1, description="newer than this event id")] = None,
) -> HTMLResponse:
    if before is not None and after is not None:
        raise HTTPException(422, "before, after: give one of them, not both")
    with sessions() as s:
        found = history_page(s, filters.domain(), before=before, after=after)
        choices = filter_choices(s)
        return page(
            request,
            "history.html",
            page_of=found,
            f=filters,
            choices=choices,
            page_size=PAGE_SIZE,
            paged=before is not None or after is not None,
            latest_url=f"/history{filters.query()}",
            older_url=f"/history{filters.query(before=found.older)}" if found.older else None,
            newer_url=f"/history{filters.query(after=found.newer)}" if found.newer else None,
            csv_url=f"/history.csv{filters.query()}",
        )


@router.get("/history.csv")
def history_csv(
    _: PageViewer,
    sessions: SessionsDep,
    filters: Annotated[Filters, Depends()],
) -> Response:
    header = [
        "id",
        "at",
        "flag",
        "from",
        "to",
        "actor",
        "method",
        "reason",
        "version",
        "rollback_record_id",
        "hash",
    ]
    with sessions() as s:
        rows = [
            [
                e.id,
                e.at.isoformat(),
                e.flag_name,
                e.old_value,
                e.new_value,
                e.actor,
                e.method,
                e.reason,
                e.version,
                e.rollback_record_id or "",
                e.hash,
            ]
            for e in s.scalars(filters.domain().events().order_by(AuditEvent.id.desc()))
        ]
    stamp = datetime.now(UTC).strftime("%Y%m%d_%H%M%S")
    return Response(
        csv_text(header, rows),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="pcm_ops_flag_history_{stamp}.csv"'},
    )


def affected_estimate(s: Session, at: datetime) -> str:
    """What the console itself measured in the 10 minutes before the rollback."""
    points = [p for p in timeline(s, since=at - timedelta(minutes=10)) if p.minute <= at]
    requests = sum(p.requests for p in points)
    errors = sum(p.errors for p in points)
    return (
        f"{requests} requests served in the 10 minutes before the rollback, "
        f"{errors} of them failed with a server error"
    )


@router.get("/records/{record_id}", response_class=HTMLResponse)
def record_page(
    request: Request, record_id: RowId, _: PageViewer, sessions: SessionsDep, runtime: RuntimeDep
) -> HTMLResponse:
    with sessions() as s:
        row = s.get(RollbackRecord, record_id)
        if row is None:
            raise HTTPException(404, f"no rollback record {record_id}")
        record: dict[str, Any] = record_out(row)
        affected = affected_estimate(s, row.started_at)
        events = list(
            s.scalars(
                select(AuditEvent)
                .where(AuditEvent.rollback_record_id == record_id)
                .order_by(AuditEvent.id)
            )
        )
    db = database_health(sessions)
    flags = runtime.health()
    status = (
        f"application {'healthy' if db['ok'] and flags['status'] == 'healthy' else 'UNHEALTHY'}"
        f", database {'reachable' if db['ok'] else 'UNREACHABLE'}, flags version "
        f"{flags['version']}{', rollback mode ON' if runtime.rollback_mode else ''}"
    )
    restart = sorted(
        {str(c.get("flag")) for c in record["changes"]} & set(flags["pending_restart"])
    )
    steps = "root cause analysis; fix, test in staging, then re-enable behind the flag"
    if restart:
        how = request.app.state.settings.restart_command()
        steps = f"restart to apply {', '.join(restart)} ({how}); {steps}"
    impact = f"behaviour behind {len(record['changes'])} change(s) switched back"
    message = communication(record, status=status, impact=impact, next_steps=steps, users=affected)
    return page(
        request,
        "record.html",
        record=record,
        events=events,
        log_entry=log_entry(record),
        message=message,
    )
