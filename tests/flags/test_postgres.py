"""The flag store on a real PostgreSQL server: migrations, concurrent writers, rollback.

CI sets PCM_REQUIRE_POSTGRES=1, so there a missing server fails instead of skipping.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from backend.core.config import Settings
from backend.db.init_db import alembic_config, init_db
from backend.db.session import make_engine, session_factory
from backend.flags import FlagRuntime
from backend.flags.audit import verify_chain
from backend.flags.models import AuditEvent, FlagRow
from tests.postgres import scratch_database


@pytest.fixture(scope="module")
def pg_database() -> Iterator[str]:
    with scratch_database("pcm_test") as (_name, url):
        yield url


@pytest.fixture
def pg_settings(pg_database: str, make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(database_url=pg_database)


@pytest.fixture
def pg_engine(pg_settings: Settings) -> Iterator[Engine]:
    init_db(pg_settings)
    engine = make_engine(pg_database_url(pg_settings))
    yield engine
    engine.dispose()


def pg_database_url(settings: Settings) -> str:
    assert settings.database_url is not None
    return settings.database_url


@pytest.fixture
def pg_sessions(pg_engine: Engine) -> sessionmaker[Session]:
    return session_factory(pg_engine)


def test_init_db_is_idempotent_on_postgres(pg_settings: Settings, pg_engine: Engine) -> None:
    again = init_db(pg_settings)
    assert again.flags_added == []
    assert "postgresql" in again.database


def test_concurrent_toggles_none_lost_on_postgres(pg_sessions: sessionmaker[Session]) -> None:
    runtime = FlagRuntime(pg_sessions)
    runtime.refresh(force=True)
    with pg_sessions() as s:
        before = len(s.scalars(select(AuditEvent.id)).all())

    def worker(i: int) -> None:
        for j in range(15):
            runtime.toggle("thread_safe_sessions", (i + j) % 2 == 0, actor=f"w{i}", method="api")

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(worker, range(8)))
    with pg_sessions() as s:
        events = s.scalars(select(AuditEvent).order_by(AuditEvent.id)).all()
        assert len(events) == before + 120
        report = verify_chain(s)
        assert report.ok, report.problems
        row = s.get(FlagRow, "thread_safe_sessions")
        assert row is not None and row.enabled is events[-1].new_value


def test_emergency_rollback_on_postgres(pg_sessions: sessionmaker[Session]) -> None:
    runtime = FlagRuntime(pg_sessions)
    runtime.refresh(force=True)
    runtime.toggle("xss_protection_enabled", True, actor="t", method="api")
    result = runtime.rollback(None, actor="t", method="emergency", reason="pg test")
    assert result.verification == "success"
    with pg_sessions() as s:
        assert all(not r.enabled for r in s.scalars(select(FlagRow)))


def test_migrations_downgrade_and_upgrade_on_postgres(pg_engine: Engine) -> None:
    from alembic import command

    cfg = alembic_config()

    def run(fn: Callable[..., Any], rev: str) -> None:
        with pg_engine.begin() as conn:
            cfg.attributes["connection"] = conn
            fn(cfg, rev)

    run(command.downgrade, "base")
    with pg_engine.connect() as conn:
        tables = {
            r[0]
            for r in conn.exec_driver_sql(
                "SELECT tablename FROM pg_tables WHERE schemaname='public'"
            )
        }
    assert "feature_flags" not in tables
    run(command.upgrade, "heads")
    with pg_engine.connect() as conn:
        tables = {
            r[0]
            for r in conn.exec_driver_sql(
                "SELECT tablename FROM pg_tables WHERE schemaname='public'"
            )
        }
    assert {"feature_flags", "flag_audit_events", "rollback_records"} <= tables
