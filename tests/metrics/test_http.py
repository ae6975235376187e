"""The request metrics' middleware on a small app: a handler that fails is a server error of its
route, counted once, with the answer's status."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import CollectorRegistry
from sqlalchemy.orm import Session, sessionmaker

from backend.metrics import MetricsRecorder, RequestMetricsMiddleware
from backend.metrics.http import HttpMetrics
from backend.metrics.recorder import timeline


def values(registry: CollectorRegistry) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    text = generate_latest(registry).decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
    }


def test_a_failing_handler__counted_as_a_server_error_of_its_route(
    sessions: sessionmaker[Session],
) -> None:
    # Given: an app whose /items/{item_id} fails, behind the middleware
    app = FastAPI()

    @app.get("/items/{item_id}")
    def item(item_id: int) -> dict[str, int]:
        if item_id == 13:
            raise RuntimeError("boom")
        return {"id": item_id}

    registry = CollectorRegistry()
    recorder = MetricsRecorder(sessions)
    app.add_middleware(RequestMetricsMiddleware, recorder=recorder, http=HttpMetrics(registry))
    # When
    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.get("/items/1").status_code == 200
        assert client.get("/items/13").status_code == 500
    # Then
    found = values(registry)
    route = ("route", "/items/{item_id}")
    get = ("method", "GET")
    assert found[("pcm_http_server_errors_total", frozenset({get, route}))] == 1
    for status in ("200", "500"):
        labels = frozenset({get, route, ("status", status)})
        assert found[("pcm_http_requests_total", labels)] == 1
        assert found[("pcm_http_request_duration_seconds_count", labels)] == 1
    assert found[("pcm_http_requests_in_progress", frozenset())] == 0
    # The dashboard's recorder saw the same two requests, one of them an error
    recorder.flush()
    with sessions() as s:
        points = timeline(s, since=datetime.now(UTC) - timedelta(minutes=5))
    assert sum(p.requests for p in points) == 2
    assert sum(p.errors for p in points) == 1
