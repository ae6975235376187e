"""flag store, audit, rollback records, tokens, providers

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_api_tokens_token_hash")),
    )
    op.create_table(
        "feature_flags",
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("phase", sa.Integer(), nullable=False),
        sa.Column("risk", sa.String(length=16), nullable=False),
        sa.Column("rollback_value", sa.Boolean(), nullable=False),
        sa.Column("requires_restart", sa.Boolean(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_feature_flags")),
    )
    op.create_table(
        "flag_store",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("audit_head", sa.String(length=64), nullable=False),
        sa.Column("audit_count", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_flag_store")),
    )
    op.create_table(
        "providers",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("account_id", sa.String(length=12), nullable=False),
        sa.Column("default_region", sa.String(length=32), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_providers")),
        sa.UniqueConstraint("name", name=op.f("uq_providers_name")),
    )
    op.create_table(
        "rollback_records",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("feature", sa.String(length=100), nullable=False),
        sa.Column("trigger", sa.Text(), nullable=False),
        sa.Column("method", sa.String(length=20), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("duration_ms", sa.Float(), nullable=False),
        sa.Column("verification", sa.String(length=20), nullable=False),
        sa.Column("changes", sa.JSON(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rollback_records")),
    )
    with op.batch_alter_table("rollback_records", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_rollback_records_started_at"), ["started_at"], unique=False
        )

    op.create_table(
        "flag_audit_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("flag_name", sa.String(length=100), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("method", sa.String(length=20), nullable=False),
        sa.Column("old_value", sa.Boolean(), nullable=True),
        sa.Column("new_value", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("rollback_record_id", sa.Integer(), nullable=True),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["rollback_record_id"],
            ["rollback_records.id"],
            name=op.f("fk_flag_audit_events_rollback_record_id_rollback_records"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_flag_audit_events")),
        sa.UniqueConstraint("hash", name=op.f("uq_flag_audit_events_hash")),
    )
    with op.batch_alter_table("flag_audit_events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_flag_audit_events_at"), ["at"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_flag_audit_events_flag_name"), ["flag_name"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_flag_audit_events_method"), ["method"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("flag_audit_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_flag_audit_events_method"))
        batch_op.drop_index(batch_op.f("ix_flag_audit_events_flag_name"))
        batch_op.drop_index(batch_op.f("ix_flag_audit_events_at"))

    op.drop_table("flag_audit_events")
    with op.batch_alter_table("rollback_records", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_rollback_records_started_at"))

    op.drop_table("rollback_records")
    op.drop_table("providers")
    op.drop_table("flag_store")
    op.drop_table("feature_flags")
    op.drop_table("api_tokens")
