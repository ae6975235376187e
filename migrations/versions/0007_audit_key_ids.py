"""audit events record the key that chained them (HMAC-SHA256)

`flag_audit_events.key_id`: the id of the audit key an event was chained with (HMAC-SHA256);
NULL for the events written before, chained with plain SHA-256, which keep verifying as they
are: upgrading a live database rewrites nothing and reports no false tampering.

The downgrade re-chains the keyed events with plain SHA-256 (and moves the store's head along),
because the code before this revision cannot check an HMAC and would report every keyed event
as edited. It cannot check the HMACs first (a migration has no key): run
`pcm-ops db verify` before downgrading. Checkpoints in data/audit_checkpoints.jsonl no longer
match the re-chained events: move that file aside after a downgrade.

Revision ID: 0007_audit
Revises: 0006
Create Date: 2026-12-01
"""

from __future__ import annotations

import hashlib

import sqlalchemy as sa
from alembic import op

from backend.db.base import UTCDateTime
from backend.flags.audit import GENESIS, canonical

revision = "0007_audit"
down_revision = "0006"
branch_labels = None
depends_on = None

# The columns as the model reads them (UTC-aware timestamps, booleans), so that each body is
# byte for byte the one the chain hashed.
_EVENTS = sa.table(
    "flag_audit_events",
    sa.column("id", sa.Integer()),
    sa.column("at", UTCDateTime()),
    sa.column("flag_name", sa.String()),
    sa.column("actor", sa.String()),
    sa.column("method", sa.String()),
    sa.column("old_value", sa.Boolean()),
    sa.column("new_value", sa.Boolean()),
    sa.column("reason", sa.Text()),
    sa.column("version", sa.Integer()),
    sa.column("rollback_record_id", sa.Integer()),
    sa.column("prev_hash", sa.String()),
    sa.column("hash", sa.String()),
    sa.column("key_id", sa.String()),
)


def upgrade() -> None:
    with op.batch_alter_table("flag_audit_events") as batch_op:
        batch_op.add_column(sa.Column("key_id", sa.String(length=40), nullable=True))


def downgrade() -> None:
    _rechain_unkeyed()
    with op.batch_alter_table("flag_audit_events") as batch_op:
        batch_op.drop_column("key_id")


def _rechain_unkeyed() -> None:
    conn = op.get_bind()
    e = _EVENTS.c
    first = conn.scalar(sa.select(sa.func.min(e.id)).where(e.key_id.is_not(None)))
    if first is None:
        return
    prev = conn.scalar(sa.select(e.hash).where(e.id < first).order_by(e.id.desc()).limit(1))
    prev = prev or GENESIS
    updates = []
    for row in conn.execute(sa.select(_EVENTS).where(e.id >= first).order_by(e.id)).mappings():
        digest = hashlib.sha256((prev + canonical(row)).encode()).hexdigest()
        updates.append({"event_id": row["id"], "prev": prev, "digest": digest})
        prev = digest
    conn.execute(
        sa.text(
            "UPDATE flag_audit_events SET prev_hash = :prev, hash = :digest WHERE id = :event_id"
        ),
        updates,
    )
    conn.execute(sa.text("UPDATE flag_store SET audit_head = :head WHERE id = 1"), {"head": prev})
