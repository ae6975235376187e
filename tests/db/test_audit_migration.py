"""Revision 0007_audit (the key id of each audit event) up and down, on empty and filled
databases, SQLite and PostgreSQL: upgrading keeps old events verifying; downgrading re-chains
the keyed events so that the code before it (plain SHA-256) verifies them too."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator

import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy import Engine, inspect
from sqlalchemy.orm import Session, sessionmaker

from backend.core.config import Settings
from backend.db.base import UTCDateTime
from backend.db.init_db import alembic_config, init_db
from backend.db.session import engine_for, session_factory
from backend.flags import FlagRuntime
from backend.flags.audit import GENESIS, canonical, verify_chain
from backend.security.audit_keys import anchor_sessions
from tests.postgres import scratch_database

# The revision below 0007_audit, by name: "0007_audit@-1" stops resolving once a later
# revision sits on top of this one (0008_ack), and the downgrade then does nothing.
BELOW = "0006"
CSRF = "csrf_tokens_enabled"

# The events table as the code before 0007_audit knew it.
OLD_EVENTS = sa.table(
    "flag_audit_events",
    *(sa.column(n, sa.Integer()) for n in ("id", "version", "rollback_record_id")),
    sa.column("at", UTCDateTime()),
    *(sa.column(n, sa.String()) for n in ("flag_name", "actor", "method", "reason")),
    *(sa.column(n, sa.Boolean()) for n in ("old_value", "new_value")),
    *(sa.column(n, sa.String()) for n in ("prev_hash", "hash")),
)


@pytest.fixture(params=["sqlite", "postgresql"])
def settings_on(
    request: pytest.FixtureRequest, make_settings: Callable[..., Settings]
) -> Iterator[Settings]:
    if request.param == "sqlite":
        yield make_settings()
        return
    with scratch_database("pcm_audit_mig") as (_name, url):
        yield make_settings(database_url=url)


@pytest.fixture
def engine(settings_on: Settings) -> Iterator[Engine]:
    init_db(settings_on)
    eng = engine_for(settings_on)
    yield eng
    eng.dispose()


def migrate(engine: Engine, direction: str, revision: str) -> None:
    cfg = alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        getattr(command, direction)(cfg, revision)


def event_columns(engine: Engine) -> set[str]:
    return {c["name"] for c in inspect(engine).get_columns("flag_audit_events")}


def verifies_as_before_0007(engine: Engine) -> bool:
    """The check of the code before this revision: plain SHA-256 links up to the store's head."""
    prev = GENESIS
    with engine.connect() as conn:
        for row in conn.execute(sa.select(OLD_EVENTS).order_by(OLD_EVENTS.c.id)).mappings():
            digest = hashlib.sha256((prev + canonical(row)).encode()).hexdigest()
            if row["prev_hash"] != prev or row["hash"] != digest:
                return False
            prev = digest
        head = conn.scalar(sa.text("SELECT audit_head FROM flag_store WHERE id = 1"))
    return head in ("", prev)


def fill(settings: Settings, sessions: sessionmaker[Session]) -> None:
    """Two events from before the audit key, then keyed ones: a toggle and a bulk rollback."""
    runtime = FlagRuntime(sessions)
    runtime.refresh(force=True)
    for enabled in (False, True):
        runtime.toggle(CSRF, enabled, actor="before", method="api")
    anchor_sessions(sessions, settings)
    runtime.toggle(CSRF, False, actor="after", method="api")
    runtime.toggle(CSRF, True, actor="after", method="api")
    runtime.rollback(None, actor="after", method="emergency", reason="drill")


def test_0007__empty_database__goes_down_and_up(engine: Engine) -> None:
    assert "key_id" in event_columns(engine)
    migrate(engine, "downgrade", BELOW)
    assert "key_id" not in event_columns(engine)
    migrate(engine, "upgrade", "heads")
    assert "key_id" in event_columns(engine)


def test_0007__filled_database__downgrade_rechains_and_upgrade_verifies(
    engine: Engine, settings_on: Settings
) -> None:
    # Given unkeyed events followed by keyed ones, which verify
    sessions = session_factory(engine)
    fill(settings_on, sessions)
    with sessions() as s:
        before = verify_chain(s)
    assert (before.ok, before.events) == (True, 12), before.problems
    # When the revision is downgraded
    migrate(engine, "downgrade", BELOW)
    # Then the column is gone and the older code's check passes on every event
    assert "key_id" not in event_columns(engine)
    assert verifies_as_before_0007(engine)
    # And when upgraded again, every event verifies (all unkeyed now), and new ones chain on
    migrate(engine, "upgrade", "heads")
    plain = session_factory(engine)
    FlagRuntime(plain).toggle(CSRF, True, actor="later", method="api")  # off since the rollback
    with plain() as s:
        after = verify_chain(s)
    assert (after.ok, after.events, after.problems) == (True, 13, [])


def test_0007__upgrading_a_filled_database_from_0006__old_events_verify(
    engine: Engine, settings_on: Settings
) -> None:
    # Given a database at the revision before, with events written by the code of then
    migrate(engine, "downgrade", BELOW)
    migrate(engine, "upgrade", "heads")
    sessions = session_factory(engine)
    runtime = FlagRuntime(sessions)
    runtime.refresh(force=True)
    runtime.toggle(CSRF, False, actor="old", method="api")
    migrate(engine, "downgrade", BELOW)
    assert verifies_as_before_0007(engine)
    # When upgraded, and the process (now with its key) writes more
    migrate(engine, "upgrade", "heads")
    anchor_sessions(sessions, settings_on)
    runtime.toggle(CSRF, True, actor="new", method="api")
    # Then the whole chain verifies
    with sessions() as s:
        report = verify_chain(s)
    assert (report.ok, report.events, report.problems) == (True, 2, [])
