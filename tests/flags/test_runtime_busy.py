"""A busy database is not a down one: changes wait (bounded) for a lock another connection
holds, then answer "database busy, retry"; nothing is journaled and the last-known state is
not served. Real SQLite files (another connection holds `BEGIN IMMEDIATE`) and the real
PostgreSQL (another session holds a table lock).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import Engine, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool

from backend.core.config import Settings
from backend.db.init_db import InitReport, init_db
from backend.db.session import make_engine, session_factory
from backend.flags import FlagRuntime, FlagStoreBusy, current, journal
from backend.flags.models import FlagRow
from tests.postgres import scratch_database
from tests.sqlite_lock import WriteLock

CSRF = "csrf_tokens_enabled"
XSS = "xss_protection_enabled"
MakeRuntime = Callable[..., FlagRuntime]
# The tests holding SQLite's write lock; the PostgreSQL table-lock ones below are their twins.
SQLITE_LOCK = pytest.mark.sqlite_only("holds SQLite's write lock (BEGIN IMMEDIATE) on the file")


@contextmanager
def write_lock(database: Path) -> Iterator[WriteLock]:
    lock = WriteLock(database)
    try:
        yield lock
    finally:
        lock.release()


@pytest.fixture
def database(settings: Settings, initialized: InitReport) -> Path:
    return settings.sqlite_path


def sessions_with_wait(database: Path, seconds: float) -> sessionmaker[Session]:
    return session_factory(make_engine(f"sqlite:///{database}", busy_timeout=seconds))


def stored(sessions: sessionmaker[Session], name: str) -> bool:
    with sessions() as s:
        row = s.get(FlagRow, name)
        assert row is not None
        return row.enabled


# -- shorter than the bound: waited out -------------------------------------------------------
@SQLITE_LOCK
def test_toggle__write_lock_held_shorter_than_the_bound__waits_and_stores(
    make_runtime: MakeRuntime, database: Path, settings: Settings
) -> None:
    # Given a runtime that waits up to 30 s, and another connection holding the write lock
    rt = make_runtime(sessions=sessions_with_wait(database, 30), poll_interval=0.01)
    rt.refresh(force=True)
    rt.start_polling()
    with write_lock(database) as lock:
        timer = lock.release_after(1.0)
        # When a flag is disabled meanwhile
        result = rt.toggle(CSRF, False, actor="a", method="api")
        # Then it was stored once the lock was released: not journaled, not refused
        assert lock.released.is_set()
        timer.join()
    assert result.journal_id is None
    assert (result.flag.stored_enabled, result.flag.source) == (False, "stored")
    assert stored(rt.sessions, CSRF) is False
    assert not settings.rollback_journal_file.exists()
    health = rt.health()
    assert (health["status"], health["store_reachable"], health["error"]) == (
        "healthy",
        True,
        None,
    )
    assert current().from_last_known_state is False


@SQLITE_LOCK
def test_enable__write_lock_held_shorter_than_the_bound__waits_and_stores(
    make_runtime: MakeRuntime, database: Path
) -> None:
    # Enabling is what the old code refused as "database unreachable (database is locked)".
    rt = make_runtime(sessions=sessions_with_wait(database, 30))
    rt.refresh(force=True)
    rt.toggle(CSRF, False, actor="a", method="api")
    with write_lock(database) as lock:
        lock.release_after(1.0)
        result = rt.toggle(CSRF, True, actor="a", method="api")
        assert lock.released.is_set()
    assert (result.journal_id, result.flag.enabled) == (None, True)
    assert stored(rt.sessions, CSRF) is True


@SQLITE_LOCK
def test_rollback__write_lock_held_shorter_than_the_bound__waits_and_records(
    make_runtime: MakeRuntime, database: Path, settings: Settings
) -> None:
    rt = make_runtime(sessions=sessions_with_wait(database, 30))
    rt.refresh(force=True)
    with write_lock(database) as lock:
        lock.release_after(1.0)
        result = rt.rollback(None, actor="a", method="emergency")
        assert lock.released.is_set()
    assert (result.verification, result.journal_id) == ("success", None)
    assert result.record_id is not None
    assert not settings.rollback_journal_file.exists()
    assert rt.health()["status"] == "healthy"


# -- longer than the bound: a clear "busy" ----------------------------------------------------
@SQLITE_LOCK
def test_toggle__write_lock_held_past_the_bound__is_refused_as_busy_not_journaled(
    make_runtime: MakeRuntime, database: Path, settings: Settings
) -> None:
    # Given a runtime that waits at most half a second, and a lock held until it gives up
    rt = make_runtime(sessions=sessions_with_wait(database, 0.5), poll_interval=0.01)
    rt.refresh(force=True)
    rt.start_polling()
    before = current()
    with write_lock(database):
        # When a flag is disabled (a change the journal would take) and another enabled
        with pytest.raises(FlagStoreBusy, match="database busy, retry"):
            rt.toggle(CSRF, False, actor="a", method="api")
        with pytest.raises(FlagStoreBusy, match="database busy, retry"):
            rt.toggle("postgresql_support", True, actor="a", method="api")
        # (setting the value a flag has writes nothing, so the lock does not stop it)
        assert rt.toggle(CSRF, True, actor="a", method="api").changed is False
        with pytest.raises(FlagStoreBusy, match="database busy, retry"):
            rt.rollback(None, actor="a", method="emergency")
        # Then nothing was journaled, and the process keeps serving the store's state
        assert not settings.rollback_journal_file.exists()
        assert current().from_last_known_state is False
        assert current().version == before.version
        health = rt.health()
        assert health["store_reachable"] is True
        assert health["journaled_rollbacks"] == []
    assert stored(rt.sessions, CSRF) is True


def test_busy_is_not_unreachable__a_real_locked_error__is_classified_as_contention(
    database: Path,
) -> None:
    engine = make_engine(f"sqlite:///{database}", busy_timeout=0.1, poolclass=NullPool)
    with (
        write_lock(database),
        pytest.raises(OperationalError) as caught,
        session_factory(engine).begin() as s,
    ):
        s.execute(select(FlagRow.name).limit(1))
        s.get(FlagRow, CSRF).enabled = False  # type: ignore[union-attr]
    assert journal.store_busy(caught.value) is True
    assert journal.store_unreachable(caught.value) is False


def test_a_missing_database_directory_is_still_unreachable(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/gone/pcm.db", poolclass=NullPool)
    with pytest.raises(OperationalError) as caught, engine.connect() as conn:
        conn.exec_driver_sql("SELECT 1")
    assert journal.store_busy(caught.value) is False
    assert journal.store_unreachable(caught.value) is True


# -- PostgreSQL: a lock held past lock_timeout ------------------------------------------------
@pytest.fixture
def pg_engine(make_settings: Callable[..., Settings]) -> Iterator[Engine]:
    with scratch_database("pcm_busy") as (_name, url):
        init_db(make_settings(database_url=url))
        engine = make_engine(url, busy_timeout=0.5)
        yield engine
        engine.dispose()


def test_postgres__table_lock_held_past_the_bound__is_refused_as_busy_not_journaled(
    make_runtime: MakeRuntime, pg_engine: Engine, settings: Settings
) -> None:
    rt = make_runtime(sessions=session_factory(pg_engine))
    rt.refresh(force=True)
    plain = pg_engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(plain) as other:
        other.execute("LOCK TABLE flag_store IN ACCESS EXCLUSIVE MODE")
        with pytest.raises(FlagStoreBusy, match="database busy, retry"):
            rt.toggle(CSRF, False, actor="a", method="api")
        other.rollback()
    assert not settings.rollback_journal_file.exists()
    assert rt.health()["store_reachable"] is True
    assert rt.toggle(CSRF, False, actor="a", method="api").journal_id is None


def test_postgres__table_lock_held_shorter_than_the_bound__waits_and_stores(
    make_runtime: MakeRuntime, make_settings: Callable[..., Settings]
) -> None:
    with scratch_database("pcm_busy") as (_name, url):
        init_db(make_settings(database_url=url))
        engine = make_engine(url, busy_timeout=30)
        try:
            rt = make_runtime(sessions=session_factory(engine))
            rt.refresh(force=True)
            plain = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
            released = threading.Event()
            with psycopg.connect(plain) as other:
                other.execute("LOCK TABLE flag_store IN ACCESS EXCLUSIVE MODE")

                def release() -> None:
                    released.set()
                    other.rollback()

                timer = threading.Timer(1.0, release)
                timer.start()
                result = rt.rollback([XSS], actor="a", method="feature_flag")
                assert released.is_set()
                timer.join()
            assert (result.verification, result.journal_id) == ("success", None)
        finally:
            engine.dispose()
