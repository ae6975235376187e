"""who acknowledged a rollback, and when

`rollback_acknowledgements`: one row per acknowledged rollback record (unique `record_id`), with
the person, the way (api, ui, cli) and the time. The console shows a banner for the latest
emergency rollback until it has a row here. Records made before this revision have none, so
the latest of them shows the banner once after an upgrade: someone should look at it anyway.

Revision ID: 0008_ack
Revises: 0007_audit
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_ack"
down_revision = "0007_audit"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rollback_acknowledgements",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("record_id", sa.Integer(), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("method", sa.String(length=20), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["record_id"],
            ["rollback_records.id"],
            name=op.f("fk_rollback_acknowledgements_record_id_rollback_records"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rollback_acknowledgements")),
        sa.UniqueConstraint("record_id", name=op.f("uq_rollback_acknowledgements_record_id")),
    )


def downgrade() -> None:
    op.drop_table("rollback_acknowledgements")
