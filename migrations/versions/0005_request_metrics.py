"""per-minute request metrics

Revision ID: 0005
Revises: 0001
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "request_metrics",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("minute", sa.DateTime(timezone=True), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("requests", sa.Integer(), nullable=False),
        sa.Column("errors", sa.Integer(), nullable=False),
        sa.Column("total_ms", sa.Float(), nullable=False),
        sa.Column("max_ms", sa.Float(), nullable=False),
        sa.Column("histogram", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_request_metrics")),
    )
    with op.batch_alter_table("request_metrics") as batch_op:
        batch_op.create_index(batch_op.f("ix_request_metrics_minute"), ["minute"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("request_metrics") as batch_op:
        batch_op.drop_index(batch_op.f("ix_request_metrics_minute"))
    op.drop_table("request_metrics")
