"""HTTP request metrics in Prometheus' conventions: latency as a histogram in seconds, requests
and server errors as counters, labelled by method, route template and status.

Labels are bounded: the route is the template the request matched (`/api/feature-flags/
{flag_name}`, never the raw path, so a scan of random URLs adds one series, `unmatched`), and a
method outside HTTP's own set is `other`.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.registry import CollectorRegistry
from starlette.types import Scope

from backend.metrics.recorder import LATENCY_BUCKETS_MS

# The dashboard's buckets (backend.metrics.recorder), in seconds; +Inf is added by the client.
BUCKETS_SECONDS: tuple[float, ...] = tuple(b / 1000 for b in LATENCY_BUCKETS_MS[:-1])
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE"})
UNMATCHED = "unmatched"
LABELS = ("method", "route", "status")


def route_of(scope: Scope) -> str:
    """The template of the route that handled the request (set in the scope by the router)."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) and path else UNMATCHED


def method_of(scope: Scope) -> str:
    method = str(scope.get("method", "")).upper()
    return method if method in METHODS else "other"


class HttpMetrics:
    """The request metrics of one app. In multiprocess mode (`registry` None) the values go to
    this worker's files and a MultiProcessCollector reports them; otherwise they are registered
    in `registry`."""

    def __init__(self, registry: CollectorRegistry | None) -> None:
        self.duration = Histogram(
            "pcm_http_request_duration_seconds",
            "Time from a request's arrival to the end of its answer, by route template",
            LABELS,
            buckets=BUCKETS_SECONDS,
            registry=registry,
        )
        self.requests = Counter(
            "pcm_http_requests",
            "HTTP requests answered (499: the client went away first)",
            LABELS,
            registry=registry,
        )
        self.server_errors = Counter(
            "pcm_http_server_errors",
            "HTTP requests answered with a 5xx status",
            ("method", "route"),
            registry=registry,
        )
        self.in_progress = Gauge(
            "pcm_http_requests_in_progress",
            "Requests being answered now, by every live worker",
            registry=registry,
            multiprocess_mode="livesum",
        )

    def observe(self, scope: Scope, status: int, seconds: float) -> None:
        method, route = method_of(scope), route_of(scope)
        code = str(status)
        self.duration.labels(method, route, code).observe(seconds)
        self.requests.labels(method, route, code).inc()
        if status >= 500:
            self.server_errors.labels(method, route).inc()
