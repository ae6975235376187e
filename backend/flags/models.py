"""Tables of the flag store: flags, the store's version row, audit events, rollback records."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Boolean, Float, ForeignKey, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from backend.db.base import Base, UTCDateTime, utcnow


class FlagRow(Base):
    __tablename__ = "feature_flags"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    description: Mapped[str] = mapped_column(Text, default="")
    phase: Mapped[int] = mapped_column(Integer, default=0)
    risk: Mapped[str] = mapped_column(String(16), default="medium")
    rollback_value: Mapped[bool] = mapped_column(Boolean, default=False)
    requires_restart: Mapped[bool] = mapped_column(Boolean, default=False)
    enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_by: Mapped[str] = mapped_column(String(200), default="system")
    # The store version of the change that last wrote this row: a refresh from version V
    # loads only the rows with version > V.
    version: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))


class FlagStoreRow(Base):
    """One row: the store's version (bumped by every change) and the audit chain's head."""

    __tablename__ = "flag_store"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[int] = mapped_column(Integer, default=0)
    audit_head: Mapped[str] = mapped_column(String(64), default="")
    audit_count: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class AuditEvent(Base):
    """An append-only, hash-chained record of one flag change."""

    __tablename__ = "flag_audit_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    flag_name: Mapped[str] = mapped_column(String(100), index=True)
    actor: Mapped[str] = mapped_column(String(200))
    method: Mapped[str] = mapped_column(String(20), index=True)
    old_value: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    new_value: Mapped[bool] = mapped_column(Boolean)
    reason: Mapped[str] = mapped_column(Text, default="")
    version: Mapped[int] = mapped_column(Integer)
    rollback_record_id: Mapped[int | None] = mapped_column(
        ForeignKey("rollback_records.id"), nullable=True
    )
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))
    # The audit key that chained this event (HMAC-SHA256); None: plain SHA-256, as written
    # before the chain was keyed. The key itself is never in the database.
    key_id: Mapped[str | None] = mapped_column(String(40), nullable=True)


class RollbackRecord(Base):
    """The runbook's "Rollback Log Entry": what, why, how, duration, verification."""

    __tablename__ = "rollback_records"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    feature: Mapped[str] = mapped_column(String(100))
    trigger: Mapped[str] = mapped_column(Text, default="")
    method: Mapped[str] = mapped_column(String(20))
    actor: Mapped[str] = mapped_column(String(200))
    duration_ms: Mapped[float] = mapped_column(Float, default=0.0)
    verification: Mapped[str] = mapped_column(String(20), default="pending")
    changes: Mapped[list[dict[str, object]]] = mapped_column(JSON, default=list)
    version: Mapped[int] = mapped_column(Integer, default=0)
    # Loaded with the record (one join), so a record read in a closed session still has it.
    acknowledgement: Mapped[RollbackAcknowledgement | None] = relationship(
        lazy="joined", viewonly=True
    )


class RollbackAcknowledgement(Base):
    """Someone saw a rollback: who, when, how. One per record; rows are only ever added."""

    __tablename__ = "rollback_acknowledgements"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    record_id: Mapped[int] = mapped_column(ForeignKey("rollback_records.id"), unique=True)
    actor: Mapped[str] = mapped_column(String(200))
    method: Mapped[str] = mapped_column(String(20))
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
