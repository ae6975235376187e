"""The flag store on a real PostgreSQL server: migrations, concurrent writers, rollback.

CI sets PCM_REQUIRE_POSTGRES=1, so there a missing server fails instead of skipping.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from backend.core.config import Settings
from backend.db.init_db import alembic_config, init_db
from backend.db.session import make_engine, session_factory
from backend.flags import FlagRuntime, current, is_enabled, journal, service
from backend.flags.audit import verify_chain
from backend.flags.models import AuditEvent, FlagRow, RollbackRecord
from backend.flags.notify import Listener
from tests.postgres import admin_execute, scratch_database

CSRF = "csrf_tokens_enabled"


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

    def worker(i: int) -> int:
        """How many of its toggles changed the flag (the others found it so already)."""
        return sum(
            runtime.toggle(
                "thread_safe_sessions", (i + j) % 2 == 0, actor=f"w{i}", method="api"
            ).changed
            for j in range(15)
        )

    with ThreadPoolExecutor(8) as pool:
        changed = sum(pool.map(worker, range(8)))
    with pg_sessions() as s:
        events = s.scalars(select(AuditEvent).order_by(AuditEvent.id)).all()
        assert changed > 0 and len(events) == before + changed
        report = verify_chain(s)
        assert report.ok, report.problems
        row = s.get(FlagRow, "thread_safe_sessions")
        assert row is not None and row.enabled is events[-1].new_value


def test_emergency_rollback_on_postgres(pg_sessions: sessionmaker[Session]) -> None:
    runtime = FlagRuntime(pg_sessions)
    runtime.refresh(force=True)
    runtime.toggle("xss_protection_enabled", True, actor="t", method="api")
    result = runtime.rollback(None, actor="t", method="emergency", reason='pg "test" é\n')
    assert result.verification == "success"
    assert len(result.changed) > 1  # the bulk path: COPY on PostgreSQL
    with pg_sessions() as s:
        assert all(not r.enabled for r in s.scalars(select(FlagRow)))
        # The events written by COPY hash exactly as the verifier recomputes them.
        report = verify_chain(s)
        assert (report.ok, report.problems) == (True, [])
        events = s.scalars(
            select(AuditEvent).where(AuditEvent.rollback_record_id == result.record_id)
        ).all()
        assert len(events) == len(result.changed)
        assert {e.reason for e in events} == {'pg "test" é\n'}


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


# -- LISTEN/NOTIFY ----------------------------------------------------------------------------
def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.01)


def set_csrf(sessions: sessionmaker[Session], enabled: bool) -> None:
    """A change committed by another worker or instance: only the store can bring it here."""
    with sessions.begin() as s:
        service.set_flag(s, name=CSRF, enabled=enabled, actor="other", method="api")


def test_a_change_arrives_by_notification_not_by_polling(
    pg_sessions: sessionmaker[Session],
) -> None:
    # Polling and the fallback read are both 30 s apart: the change can only arrive in time
    # through its NOTIFY.
    rt = FlagRuntime(pg_sessions, poll_interval=30, listen_timeout=30)
    rt.refresh(force=True)
    rt.start_polling()
    try:
        wait_for(lambda: rt.health()["change_notifications"], 5, "the poller never listened")
        set_csrf(pg_sessions, False)
        wait_for(lambda: not is_enabled(CSRF), 5, "the change was not heard")
        assert rt.listener is not None and rt.listener.notified >= 1
        assert current().flags[CSRF].updated_by == "other"
    finally:
        rt.stop_polling()


def test_a_rolled_back_change_sends_no_notification(pg_sessions: sessionmaker[Session]) -> None:
    listener = Listener(pg_sessions.kw["bind"])
    try:
        assert listener.wait(0.01) is False  # connects and LISTENs
        with pg_sessions() as s:
            row = s.get(FlagRow, CSRF)
            assert row is not None
            flipped = not row.enabled  # a change (the value it has already writes nothing)
        with pg_sessions() as s, s.begin():
            service.set_flag(s, name=CSRF, enabled=flipped, actor="x", method="api")
            s.rollback()
        assert listener.wait(0.3) is False
        set_csrf(pg_sessions, flipped)
        assert listener.wait(5) is True
    finally:
        listener.close()


def test_a_killed_listening_connection_falls_back_to_polling_and_listens_again(
    pg_sessions: sessionmaker[Session],
) -> None:
    rt = FlagRuntime(pg_sessions, poll_interval=0.05, listen_timeout=30)
    rt.refresh(force=True)
    rt.start_polling()
    try:
        wait_for(lambda: rt.health()["change_notifications"], 5, "the poller never listened")
        assert rt.listener is not None and rt.listener.backend_pid is not None
        admin_execute("SELECT pg_terminate_backend(%s)", rt.listener.backend_pid)
        set_csrf(pg_sessions, False)  # wakes the listener, whose connection is now gone
        wait_for(lambda: not is_enabled(CSRF), 5, "no change arrived after the kill")
        # Within about a second the poller listens again, and notifications work again.
        wait_for(lambda: rt.health()["change_notifications"], 5, "the poller never listened again")
        heard = rt.listener.notified
        set_csrf(pg_sessions, True)
        wait_for(lambda: is_enabled(CSRF), 5, "the next change was not heard")
        wait_for(lambda: rt.listener is not None and rt.listener.notified > heard, 5, "no NOTIFY")
    finally:
        rt.stop_polling()


def test_stopping_does_not_wait_for_the_listen_timeout(pg_sessions: sessionmaker[Session]) -> None:
    rt = FlagRuntime(pg_sessions, poll_interval=30, listen_timeout=30)
    rt.refresh(force=True)
    rt.start_polling()
    wait_for(lambda: rt.health()["change_notifications"], 5, "the poller never listened")
    poller = rt._thread
    assert poller is not None
    rt.stop_polling()  # joins for up to 2 s
    assert not poller.is_alive()


def test_postgres__replay__skips_a_flag_changed_after_the_entry_and_applies_a_later_entry(
    pg_sessions: sessionmaker[Session],
) -> None:
    # Given a disable journaled, then an enable stored after it
    earlier = journal.new_entry(
        kind="toggle", names=[CSRF], actor="a", method="api", reason="", enabled=False
    )
    with pg_sessions.begin() as s:
        service.set_flag(s, name=CSRF, enabled=False, actor="b", method="api")
        version = service.set_flag(s, name=CSRF, enabled=True, actor="b", method="api").version
    later = journal.new_entry(
        kind="rollback", names=[CSRF], actor="c", method="feature_flag", reason=""
    )

    # When both are replayed
    with pg_sessions.begin() as s:
        first, second = journal.replay(s, [earlier, later])

    # Then the earlier one left the later enable alone (and says so), the later one applied
    assert [(x.flag, x.version) for x in first.superseded] == [(CSRF, version)]
    assert second.superseded == ()
    with pg_sessions() as s:
        row = s.get(FlagRow, CSRF)
        assert row is not None and row.enabled is False
        records = {
            r.id: r
            for r in s.scalars(
                select(RollbackRecord).where(
                    RollbackRecord.id.in_([first.record_id, second.record_id])
                )
            )
        }
        assert records[first.record_id].changes == []
        assert "superseded by version" in records[first.record_id].trigger
        assert records[second.record_id].changes == [{"flag": CSRF, "from": True, "to": False}]
        assert verify_chain(s).ok
