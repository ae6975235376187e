"""AWS: provider regions, encrypted credentials, tool runs

Revision ID: 0003
Revises: 0001
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("providers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("regions", sa.JSON(), nullable=False, server_default="[]"))
    region_list = "'[\"' || default_region || '\"]'"
    if op.get_bind().dialect.name == "postgresql":
        region_list = f"CAST({region_list} AS json)"  # PostgreSQL does not coerce text to json
    op.execute(f"UPDATE providers SET regions = {region_list}")

    op.create_table(
        "aws_credentials",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("owner", sa.String(length=200), nullable=False),
        sa.Column("provider_id", sa.Integer(), nullable=False),
        sa.Column("key_id", sa.String(length=64), nullable=False),
        sa.Column("access_key_id_enc", sa.LargeBinary(), nullable=False),
        sa.Column("secret_access_key_enc", sa.LargeBinary(), nullable=False),
        sa.Column("session_token_enc", sa.LargeBinary(), nullable=True),
        sa.Column("access_key_hint", sa.String(length=8), nullable=False),
        sa.Column("role_arn", sa.String(length=2048), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["provider_id"],
            ["providers.id"],
            name=op.f("fk_aws_credentials_provider_id_providers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_aws_credentials")),
        sa.UniqueConstraint("owner", "provider_id", name=op.f("uq_aws_credentials_owner")),
    )
    with op.batch_alter_table("aws_credentials", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_aws_credentials_owner"), ["owner"], unique=False)
        batch_op.create_index(batch_op.f("ix_aws_credentials_key_id"), ["key_id"], unique=False)

    op.create_table(
        "aws_tool_runs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("tool", sa.String(length=64), nullable=False),
        sa.Column("provider_id", sa.Integer(), nullable=True),
        sa.Column("provider_name", sa.String(length=100), nullable=False),
        sa.Column("regions", sa.JSON(), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("duration_ms", sa.Float(), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("row_count", sa.Integer(), nullable=False),
        sa.Column("errors", sa.JSON(), nullable=False),
        sa.Column("columns", sa.JSON(), nullable=False),
        sa.Column("rows", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["provider_id"],
            ["providers.id"],
            name=op.f("fk_aws_tool_runs_provider_id_providers"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_aws_tool_runs")),
    )
    with op.batch_alter_table("aws_tool_runs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_aws_tool_runs_started_at"), ["started_at"])
        batch_op.create_index(batch_op.f("ix_aws_tool_runs_actor"), ["actor"])
        batch_op.create_index(batch_op.f("ix_aws_tool_runs_tool"), ["tool"])


def downgrade() -> None:
    with op.batch_alter_table("aws_tool_runs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_aws_tool_runs_tool"))
        batch_op.drop_index(batch_op.f("ix_aws_tool_runs_actor"))
        batch_op.drop_index(batch_op.f("ix_aws_tool_runs_started_at"))
    op.drop_table("aws_tool_runs")
    with op.batch_alter_table("aws_credentials", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_aws_credentials_key_id"))
        batch_op.drop_index(batch_op.f("ix_aws_credentials_owner"))
    op.drop_table("aws_credentials")
    with op.batch_alter_table("providers", schema=None) as batch_op:
        batch_op.drop_column("regions")
