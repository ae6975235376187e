"""per-flag store version; no unique index on audit event hashes

`feature_flags.version` lets a process load only the flags changed since the snapshot it
serves (an incremental refresh) instead of every flag after every change.

The unique constraint on `flag_audit_events.hash` goes: no query looks events up by hash, the
chain check recomputes every hash anyway (and each covers the event's id, so two events cannot
share one), and its index of random keys made every large rollback rewrite nearly all of its
pages: the write cost of a thousand-flag rollback grew with the size of the audit trail.

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
    with op.batch_alter_table("flag_audit_events") as batch_op:
        batch_op.drop_constraint("uq_flag_audit_events_hash", type_="unique")
    op.execute(
        "UPDATE feature_flags"
        " SET version = COALESCE((SELECT version FROM flag_store WHERE id = 1), 0)"
    )


def downgrade() -> None:
    with op.batch_alter_table("flag_audit_events") as batch_op:
        batch_op.create_unique_constraint("uq_flag_audit_events_hash", ["hash"])
    with op.batch_alter_table("feature_flags") as batch_op:
        batch_op.drop_column("version")
