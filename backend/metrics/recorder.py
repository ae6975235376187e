"""Collect request latency and 5xx counts in memory; flush per-minute rows to the database.

The hot path is an append to a per-minute bucket under a lock held for a few microseconds;
a background thread writes finished minutes (and the current one, every few seconds) so that
several workers' figures add up in one table.
"""

from __future__ import annotations

import bisect
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import delete, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from backend.core.periodic import Periodic
from backend.metrics.models import RequestMetric

if TYPE_CHECKING:
    from backend.metrics.http import HttpMetrics

log = logging.getLogger("pcm_ops_tools.metrics")

LATENCY_BUCKETS_MS: tuple[float, ...] = (
    1,
    2,
    5,
    10,
    20,
    50,
    100,
    200,
    500,
    1000,
    2000,
    5000,
    float("inf"),
)
RETENTION = timedelta(days=7)
# Recorded for a request whose client went away before it was answered: not a server error.
CLIENT_CLOSED_REQUEST = 499


@dataclass
class Bucket:
    requests: int = 0
    errors: int = 0
    total_ms: float = 0.0
    max_ms: float = 0.0
    histogram: list[int] = field(default_factory=lambda: [0] * len(LATENCY_BUCKETS_MS))
    row_id: int | None = None


def minute_of(epoch: float) -> int:
    return int(epoch // 60) * 60


class MetricsRecorder:
    """In-memory per-minute buckets of this process, flushed to `request_metrics`."""

    def __init__(self, sessions: sessionmaker[Session], flush_interval: float = 5.0) -> None:
        self.sessions = sessions
        self.flush_interval = flush_interval
        self._buckets: dict[int, Bucket] = {}
        self._lock = threading.Lock()
        self._loop = Periodic("metrics-flush", flush_interval, self._safe_flush)
        self.pid = os.getpid()

    def observe(self, duration_ms: float, status: int) -> None:
        minute = minute_of(time.time())
        slot = bisect.bisect_left(LATENCY_BUCKETS_MS, duration_ms)
        with self._lock:
            bucket = self._buckets.get(minute)
            if bucket is None:
                bucket = self._buckets[minute] = Bucket()
            bucket.requests += 1
            bucket.errors += status >= 500
            bucket.total_ms += duration_ms
            bucket.max_ms = max(bucket.max_ms, duration_ms)
            bucket.histogram[slot] += 1

    def flush(self) -> None:
        """Write every bucket; finished minutes are then forgotten."""
        now_minute = minute_of(time.time())
        with self._lock:
            items = [
                (m, Bucket(b.requests, b.errors, b.total_ms, b.max_ms, list(b.histogram), b.row_id))
                for m, b in self._buckets.items()
            ]
        if not items:
            return
        written: dict[int, int] = {}
        with self.sessions.begin() as s:
            for minute, b in items:
                row = s.get(RequestMetric, b.row_id) if b.row_id is not None else None
                if row is None:
                    row = RequestMetric(minute=datetime.fromtimestamp(minute, UTC), pid=self.pid)
                    s.add(row)
                row.requests, row.errors = b.requests, b.errors
                row.total_ms, row.max_ms, row.histogram = b.total_ms, b.max_ms, b.histogram
                s.flush()
                written[minute] = row.id
            s.execute(
                delete(RequestMetric).where(RequestMetric.minute < datetime.now(UTC) - RETENTION)
            )
        with self._lock:
            for minute, row_id in written.items():
                if minute < now_minute:
                    self._buckets.pop(minute, None)
                elif minute in self._buckets:
                    self._buckets[minute].row_id = row_id

    def start(self) -> None:
        self._loop.start()

    def stop(self) -> None:
        self._loop.stop(timeout=2)
        self._safe_flush()

    def _safe_flush(self) -> None:
        try:
            self.flush()
        except SQLAlchemyError as exc:
            log.warning("metrics flush failed: %s", str(exc).splitlines()[0])


class RequestMetricsMiddleware:
    """Time every HTTP request and count server errors (a client that disconnected before it
    was answered is recorded as 499, not as a server error), for the dashboard's recorder and,
    when given, Prometheus' metrics."""

    def __init__(
        self, app: ASGIApp, recorder: MetricsRecorder, http: HttpMetrics | None = None
    ) -> None:
        self.app = app
        self.recorder = recorder
        self.http = http

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path", "").startswith("/static/"):
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        answered = disconnected = recorded = False

        def record() -> None:
            nonlocal recorded
            if recorded:
                return
            recorded = True
            seconds = time.perf_counter() - started
            code = CLIENT_CLOSED_REQUEST if disconnected else status
            self.recorder.observe(seconds * 1000, code)
            if self.http is not None:
                self.http.observe(scope, code, seconds)

        async def listen() -> Message:
            nonlocal disconnected
            message = await receive()
            if message["type"] == "http.disconnect" and not answered:
                disconnected = True
            return message

        async def watch(message: Message) -> None:
            nonlocal status, answered
            if message["type"] == "http.response.start":
                status = int(message["status"])
                answered = True
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                # Counted before the last byte leaves: a client that has its answer and then
                # scrapes /metrics (maybe from another worker) finds it counted.
                record()
            await send(message)

        if self.http is not None:
            self.http.in_progress.inc()
        try:
            await self.app(scope, listen, watch)
        finally:
            if self.http is not None:
                self.http.in_progress.dec()
            record()


@dataclass(frozen=True, slots=True)
class Point:
    minute: datetime
    requests: int
    errors: int
    mean_ms: float
    p95_ms: float
    max_ms: float

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0


def percentile(histogram: list[int], q: float) -> float:
    total = sum(histogram)
    if total == 0:
        return 0.0
    rank = q * total
    seen = 0
    for count, bound in zip(histogram, LATENCY_BUCKETS_MS, strict=True):
        seen += count
        if seen >= rank:
            return bound if bound != float("inf") else LATENCY_BUCKETS_MS[-2]
    return LATENCY_BUCKETS_MS[-2]


def timeline(session: Session, *, since: datetime) -> list[Point]:
    """Per-minute figures of every worker added together, oldest first."""
    merged: dict[datetime, list[RequestMetric]] = {}
    for row in session.scalars(select(RequestMetric).where(RequestMetric.minute >= since)):
        merged.setdefault(row.minute, []).append(row)
    points = []
    for minute in sorted(merged):
        rows = merged[minute]
        requests = sum(r.requests for r in rows)
        hist = [sum(col) for col in zip(*(r.histogram for r in rows), strict=True)]
        points.append(
            Point(
                minute=minute,
                requests=requests,
                errors=sum(r.errors for r in rows),
                mean_ms=sum(r.total_ms for r in rows) / requests if requests else 0.0,
                p95_ms=percentile(hist, 0.95),
                max_ms=max(r.max_ms for r in rows),
            )
        )
    return points
