"""Tables of the AWS side: providers, stored credentials (encrypted) and tool runs."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from backend.db.base import Base, UTCDateTime, utcnow


class Provider(Base):
    """An AWS account the team works with."""

    __tablename__ = "providers"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    account_id: Mapped[str] = mapped_column(String(12))
    default_region: Mapped[str] = mapped_column(String(32))
    # The regions the tools scan; the default region is always one of them.
    regions: Mapped[list[str]] = mapped_column(JSON, default=list)
    description: Mapped[str] = mapped_column(Text, default="")
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class AwsCredential(Base):
    """One owner's AWS key pair for one provider, every secret sealed with AES-256-GCM."""

    __tablename__ = "aws_credentials"
    __table_args__ = (UniqueConstraint("owner", "provider_id"),)

    # A random id, known before the row is written, so it can be bound into the ciphertexts.
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    owner: Mapped[str] = mapped_column(String(200), index=True)
    provider_id: Mapped[int] = mapped_column(ForeignKey("providers.id", ondelete="CASCADE"))
    key_id: Mapped[str] = mapped_column(String(64), index=True)
    access_key_id_enc: Mapped[bytes] = mapped_column(LargeBinary)
    secret_access_key_enc: Mapped[bytes] = mapped_column(LargeBinary)
    session_token_enc: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    access_key_hint: Mapped[str] = mapped_column(String(8))
    role_arn: Mapped[str | None] = mapped_column(String(2048), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ToolRun(Base):
    """One run of an AWS tool: who, when, what, how long, how it ended, and its table."""

    __tablename__ = "aws_tool_runs"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(200), index=True)
    tool: Mapped[str] = mapped_column(String(64), index=True)
    provider_id: Mapped[int | None] = mapped_column(
        ForeignKey("providers.id", ondelete="SET NULL"), nullable=True
    )
    # Kept by name too: the record outlives a deleted provider.
    provider_name: Mapped[str] = mapped_column(String(100))
    regions: Mapped[list[str]] = mapped_column(JSON, default=list)
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    duration_ms: Mapped[float] = mapped_column(Float, default=0.0)
    outcome: Mapped[str] = mapped_column(String(16))  # ok, partial, failed
    row_count: Mapped[int] = mapped_column(Integer, default=0)
    errors: Mapped[list[dict[str, str]]] = mapped_column(JSON, default=list)
    columns: Mapped[list[str]] = mapped_column(JSON, default=list)
    rows: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
