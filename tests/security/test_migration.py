"""Revision 0002 (users, web sessions, login throttle) upgrades and downgrades, filled or empty."""

from __future__ import annotations

from alembic import command
from sqlalchemy import Engine, inspect
from sqlalchemy.orm import Session, sessionmaker

from backend.db.init_db import alembic_config
from backend.security.sessions import SessionStore
from backend.security.users import create_user

from .conftest import PASSWORD

OURS = {"users", "web_sessions", "login_throttle"}


def run(engine: Engine, fn: object, revision: str) -> None:
    cfg = alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        fn(cfg, revision)  # type: ignore[operator]


def tables(engine: Engine) -> set[str]:
    return set(inspect(engine).get_table_names())


def test_downgrade_and_upgrade_a_filled_database(
    engine: Engine, sessions: sessionmaker[Session]
) -> None:
    with sessions.begin() as s:
        user_id = create_user(s, username="ann", password=PASSWORD, role="viewer").id
    SessionStore(sessions, idle_timeout=60, absolute_timeout=60).create(user_id=user_id)
    assert tables(engine) >= OURS
    run(engine, command.downgrade, "0001")
    assert not tables(engine) & OURS
    assert "api_tokens" in tables(engine)  # 0001's tables (and the admin token) stay
    run(engine, command.upgrade, "heads")
    assert tables(engine) >= OURS


def test_upgrade_and_downgrade_an_empty_database(engine: Engine) -> None:
    run(engine, command.downgrade, "base")
    assert not tables(engine) & (OURS | {"api_tokens"})
    run(engine, command.upgrade, "0002")
    assert tables(engine) >= OURS
    run(engine, command.downgrade, "0001")
    assert not tables(engine) & OURS
