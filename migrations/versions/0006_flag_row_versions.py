"""per-flag store version: which change last wrote each flag

Lets a process load only the flags changed since the snapshot it serves (an incremental
refresh) instead of every flag after every change.

Revision ID: 0006
Revises: 0001
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("feature_flags") as batch_op:
        batch_op.add_column(
            sa.Column("version", sa.Integer(), nullable=False, server_default=sa.text("0"))
        )
    # Existing flags count as written by the store's current version: a process that serves an
    # older snapshot then reloads them all.
    op.execute(
        "UPDATE feature_flags"
        " SET version = COALESCE((SELECT version FROM flag_store WHERE id = 1), 0)"
    )


def downgrade() -> None:
    with op.batch_alter_table("feature_flags") as batch_op:
        batch_op.drop_column("version")
