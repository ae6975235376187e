"""What a sync between the two databases already brought over, so that a second run adds
nothing twice and a later switch knows those rows are not unsynced."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from backend.db.base import Base, UTCDateTime, utcnow


class SyncedRow(Base):
    """One row of `origin` ("postgresql" or "sqlite") merged into this database: its table,
    its id there and the id it got here. Rows are only ever added."""

    __tablename__ = "sync_merged_rows"
    __table_args__ = (UniqueConstraint("origin", "table_name", "origin_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    origin: Mapped[str] = mapped_column(String(20))
    table_name: Mapped[str] = mapped_column(String(64))
    origin_id: Mapped[int] = mapped_column(Integer)
    local_id: Mapped[int] = mapped_column(Integer)
    merged_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
