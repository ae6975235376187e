"""rows a database sync brought over

`sync_merged_rows`: one row per row that `pcm-ops db sync --from postgresql|sqlite` merged
into this database (origin, table, its id there, its id here), so that a second sync adds
nothing twice and a later switch does not take them for writes still missing here.

Revision ID: 0009_sync
Revises: 0008_ack
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009_sync"
down_revision = "0008_ack"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sync_merged_rows",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("origin", sa.String(length=20), nullable=False),
        sa.Column("table_name", sa.String(length=64), nullable=False),
        sa.Column("origin_id", sa.Integer(), nullable=False),
        sa.Column("local_id", sa.Integer(), nullable=False),
        sa.Column("merged_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sync_merged_rows")),
        sa.UniqueConstraint(
            "origin",
            "table_name",
            "origin_id",
            name=op.f("uq_sync_merged_rows_origin"),
        ),
    )


def downgrade() -> None:
    op.drop_table("sync_merged_rows")
