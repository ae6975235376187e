"""Per-minute request statistics, one row per worker process and minute."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Float, Integer
from sqlalchemy.orm import Mapped, mapped_column

from backend.db.base import Base, UTCDateTime


class RequestMetric(Base):
    __tablename__ = "request_metrics"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    minute: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    pid: Mapped[int] = mapped_column(Integer)
    requests: Mapped[int] = mapped_column(Integer, default=0)
    errors: Mapped[int] = mapped_column(Integer, default=0)
    total_ms: Mapped[float] = mapped_column(Float, default=0.0)
    max_ms: Mapped[float] = mapped_column(Float, default=0.0)
    # Counts per latency bucket (upper bounds in LATENCY_BUCKETS_MS), for percentiles.
    histogram: Mapped[list[int]] = mapped_column(JSON, default=list)
