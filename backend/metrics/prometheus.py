"""Prometheus exposition of the console's state (`GET /metrics`, prometheus_client's format).

What is true of every worker comes from the served snapshot (flags, version, rollback mode);
the figures every worker contributes to come from the database, so that a scrape answered by
any worker tells the same story: changes and rollbacks (monotonic counters) and request
latency and server errors over the last five minutes (gauges over the window the runbook's
decision matrix reads: latency and error rate against the baseline).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from backend.flags import FlagRuntime, current
from backend.flags.models import FlagStoreRow, RollbackRecord
from backend.metrics.models import RequestMetric
from backend.metrics.recorder import LATENCY_BUCKETS_MS, percentile

WINDOW = timedelta(minutes=5)
QUANTILES = (0.5, 0.95, 0.99)


class ConsoleCollector(Collector):
    def __init__(self, runtime: FlagRuntime, sessions: sessionmaker[Session]) -> None:
        self.runtime = runtime
        self.sessions = sessions

    def collect(self) -> Iterator[Metric]:
        yield from self._flags()
        try:
            with self.sessions() as s:
                stored = list(self._stored(s))
        except SQLAlchemyError:
            yield GaugeMetricFamily("pcm_database_up", "The database answered this scrape", 0)
            return
        yield GaugeMetricFamily("pcm_database_up", "The database answered this scrape", 1)
        yield from stored

    def _flags(self) -> Iterator[Metric]:
        snap = current()
        health = self.runtime.health()
        enabled = GaugeMetricFamily(
            "pcm_feature_flag_enabled",
            "Effective value of each flag (1 on, 0 off) and where it comes from",
            labels=["flag", "source"],
        )
        pending = GaugeMetricFamily(
            "pcm_feature_flag_pending_restart",
            "1 while a restart-bound flag differs from the value this worker started with",
            labels=["flag"],
        )
        for state in snap.flags.values():
            enabled.add_metric([state.name, state.source], float(state.enabled))
            pending.add_metric([state.name], float(state.pending_restart))
        yield enabled
        yield pending
        yield GaugeMetricFamily(
            "pcm_feature_flags_version", "Store version of the served snapshot", snap.version
        )
        yield GaugeMetricFamily(
            "pcm_feature_flags_snapshot_age_seconds",
            "Age of the snapshot the answering worker serves",
            snap.age_seconds,
        )
        yield GaugeMetricFamily(
            "pcm_feature_flags_rollback_mode",
            "1 when FEATURE_FLAG_ROLLBACK_MODE_ENABLED serves every rollback value",
            float(self.runtime.rollback_mode),
        )
        yield GaugeMetricFamily(
            "pcm_feature_flags_healthy",
            "1 when the flag engine is healthy (fresh snapshot, store reachable, no journal)",
            float(health["status"] == "healthy"),
        )
        yield GaugeMetricFamily(
            "pcm_feature_flags_journaled_rollbacks",
            "Rollbacks made while the database was down, not yet replayed",
            len(health["journaled_rollbacks"]),
        )

    def _stored(self, s: Session) -> Iterator[Metric]:
        changes = s.scalar(select(FlagStoreRow.audit_count).where(FlagStoreRow.id == 1)) or 0
        yield CounterMetricFamily(
            "pcm_feature_flag_changes", "Flag changes in the audit trail", value=changes
        )
        rollbacks = CounterMetricFamily(
            "pcm_rollbacks",
            "Rollback records, by method and verification",
            labels=["method", "verification"],
        )
        for method, verification, count in s.execute(
            select(RollbackRecord.method, RollbackRecord.verification, func.count()).group_by(
                RollbackRecord.method, RollbackRecord.verification
            )
        ):
            rollbacks.add_metric([method, verification], count)
        yield rollbacks

        since = datetime.now(UTC) - WINDOW
        requests = errors = 0
        total_ms = 0.0
        histogram = [0] * len(LATENCY_BUCKETS_MS)
        for row in s.scalars(select(RequestMetric).where(RequestMetric.minute >= since)):
            requests += row.requests
            errors += row.errors
            total_ms += row.total_ms
            histogram = [a + b for a, b in zip(histogram, row.histogram, strict=True)]
        yield GaugeMetricFamily(
            "pcm_http_requests_5m", "HTTP requests of every worker, last 5 minutes", requests
        )
        yield GaugeMetricFamily(
            "pcm_http_server_errors_5m", "HTTP 5xx answers of every worker, last 5 minutes", errors
        )
        latency = GaugeMetricFamily(
            "pcm_http_request_duration_ms_5m",
            "Request latency of every worker over the last 5 minutes (histogram bucket bounds)",
            labels=["quantile"],
        )
        for q in QUANTILES:
            latency.add_metric([str(q)], percentile(histogram, q))
        yield latency
        yield GaugeMetricFamily(
            "pcm_http_request_mean_ms_5m",
            "Mean request latency of every worker over the last 5 minutes",
            total_ms / requests if requests else 0.0,
        )


def registry_for(runtime: FlagRuntime, sessions: sessionmaker[Session]) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ConsoleCollector(runtime, sessions))
    return registry
