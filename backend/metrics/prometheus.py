"""Prometheus exposition of the console's state (`GET /metrics`, prometheus_client's format).

A scrape answered by any worker tells the same story: the flags come from the served snapshot
(the same in every worker), changes and rollbacks from the database, request metrics from
every worker's files (prometheus_client's multiprocess mode, `backend.metrics.multiproc`), and
process metrics from every process of the server (`backend.metrics.processes`).
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import PlatformCollector, disable_created_metrics, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector, CollectorRegistry
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from backend.flags import FlagRuntime, current
from backend.flags.models import FlagStoreRow, RollbackRecord
from backend.metrics import multiproc
from backend.metrics.http import HttpMetrics
from backend.metrics.processes import ServerProcessCollector


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


def registry_for(runtime: FlagRuntime, sessions: sessionmaker[Session]) -> CollectorRegistry:
    """A registry of the flags' and the database's figures (no request or process metrics)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ConsoleCollector(runtime, sessions))
    return registry


class PrometheusExport:
    """The registry one app serves at /metrics, and the request metrics its middleware feeds."""

    def __init__(self, runtime: FlagRuntime, sessions: sessionmaker[Session]) -> None:
        # `_created` series say when a process first counted a label set: noise for a scrape
        # that adds up several processes (multiprocess mode has none), so none at all.
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.directory = multiproc.active()
        self.registry = registry_for(runtime, sessions)
        if self.directory is None:
            self.http = HttpMetrics(self.registry)
        else:
            self.http = HttpMetrics(None)  # this worker's files; the collector reads them all
            MultiProcessCollector(self.registry, str(self.directory))  # type: ignore[no-untyped-call]
        self.registry.register(ServerProcessCollector(whole_server=self.directory is not None))
        PlatformCollector(registry=self.registry)

    def render(self) -> bytes:
        if self.directory is not None:
            multiproc.reap(self.directory)
        return generate_latest(self.registry)

    def close(self) -> None:
        """This worker stops (the app's shutdown)."""
        multiproc.leave(self.directory)
