"""Request metrics: recorded per minute, flushed to the database, merged across workers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from backend.metrics.recorder import LATENCY_BUCKETS_MS, MetricsRecorder, percentile, timeline


def test_flush_and_timeline_merge_two_workers(sessions: sessionmaker[Session]) -> None:
    a, b = MetricsRecorder(sessions), MetricsRecorder(sessions)
    b.pid = a.pid + 1  # a second worker process
    for _ in range(90):
        a.observe(3.0, 200)
    for _ in range(10):
        b.observe(700.0, 503)
    a.flush()
    b.flush()
    a.observe(3.0, 200)  # the current minute's row is updated in place, not duplicated
    a.flush()
    with sessions() as s:
        points = timeline(s, since=datetime.now(UTC) - timedelta(minutes=5))
    assert len(points) == 1
    point = points[0]
    assert point.requests == 101
    assert point.errors == 10
    assert round(point.error_rate, 3) == round(10 / 101, 3)
    assert point.max_ms == 700.0
    assert point.p95_ms == 1000  # the slow tail shows in the 95th percentile


def test_percentile_of_empty_and_single_bucket() -> None:
    assert percentile([0] * len(LATENCY_BUCKETS_MS), 0.95) == 0.0
    hist = [0] * len(LATENCY_BUCKETS_MS)
    hist[3] = 5  # five requests under 10 ms
    assert percentile(hist, 0.5) == 10


def test_timeline_api_shows_requests_and_flag_changes(
    client: TestClient, admin_headers: dict[str, str]
) -> None:
    for _ in range(5):
        assert client.get("/api/health").status_code == 200
    r = client.post(
        "/api/feature-flags/toggle",
        headers=admin_headers,
        json={"flag_name": "xss_protection_enabled", "enabled": False},
    )
    assert r.status_code == 200
    client.app.state.metrics.flush()  # type: ignore[attr-defined]
    body = client.get("/api/metrics/timeline?minutes=10", headers=admin_headers).json()
    assert sum(p["requests"] for p in body["points"]) >= 6
    assert [c["flag"] for c in body["flag_changes"]] == ["xss_protection_enabled"]
    assert client.get("/api/metrics/timeline").status_code == 401
    assert client.get("/api/metrics/timeline?minutes=1", headers=admin_headers).status_code == 422
