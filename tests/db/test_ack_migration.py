"""Revision 0008_ack (who acknowledged a rollback) up and down, on empty and filled databases,
SQLite and PostgreSQL: records and their acknowledgements survive an upgrade; a downgrade drops
only the acknowledgements, and the banner comes back for the latest emergency rollback."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from alembic import command
from sqlalchemy import Engine, func, inspect, select
from sqlalchemy.orm import Session, sessionmaker

from backend.core.config import Settings
from backend.db.init_db import alembic_config, init_db
from backend.db.session import engine_for, session_factory
from backend.flags import FlagRuntime
from backend.flags.acknowledgements import acknowledge, unacknowledged_emergency
from backend.flags.models import RollbackRecord
from tests.postgres import scratch_database

BELOW = "0007_audit"  # below 0008_ack, by name: "0008_ack@-1" breaks once one sits on top
TABLE = "rollback_acknowledgements"


@pytest.fixture(params=["sqlite", "postgresql"])
def settings_on(
    request: pytest.FixtureRequest, make_settings: Callable[..., Settings]
) -> Iterator[Settings]:
    if request.param == "sqlite":
        yield make_settings()
        return
    with scratch_database("pcm_ack_mig") as (_name, url):
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


def has_table(engine: Engine) -> bool:
    return TABLE in inspect(engine).get_table_names()


def pending_id(sessions: sessionmaker[Session]) -> int | None:
    with sessions() as s:
        row = unacknowledged_emergency(s)
        return row.id if row else None


def test_0008__empty_database__goes_down_and_up(engine: Engine) -> None:
    assert has_table(engine)
    migrate(engine, "downgrade", BELOW)
    assert not has_table(engine)
    migrate(engine, "upgrade", "heads")
    assert has_table(engine)


def test_0008__filled_database__down_keeps_records_and_up_acknowledges_again(
    engine: Engine,
) -> None:
    # Given two emergency rollbacks, the first acknowledged
    sessions = session_factory(engine)
    runtime = FlagRuntime(sessions)
    runtime.refresh(force=True)
    first = runtime.rollback(None, actor="ops", method="emergency", reason="one").record_id
    second = runtime.rollback(None, actor="ops", method="emergency", reason="two").record_id
    assert first is not None and second is not None
    acknowledge(sessions, record_id=first, actor="user:ada", method="ui")
    assert pending_id(sessions) == second
    # When the revision is downgraded, the records stay and the acknowledgements go
    migrate(engine, "downgrade", BELOW)
    assert not has_table(engine)
    with engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(RollbackRecord.__table__)) == 2
    # And upgraded again, the latest waits for acknowledgement, which works as before
    migrate(engine, "upgrade", "heads")
    assert pending_id(sessions) == second
    done = acknowledge(sessions, record_id=second, actor="user:ada", method="api")
    assert done.new and pending_id(sessions) is None
    again = acknowledge(sessions, record_id=second, actor="user:bob", method="api")
    assert (again.new, again.by) == (False, "user:ada")
