"""Starting without the database: an outage is told apart from wrong settings, and a process
that started during one serves the last-known state, says so, and runs init_db once the
database answers."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from backend.core.config import Settings
from backend.db.init_db import init_db, schema_revisions
from backend.db.outage import PendingInit, unreachable
from backend.db.session import engine_for, make_engine, session_factory
from backend.flags import FlagRuntime, snapshot
from backend.main import create_app
from tests.e2e.conftest import free_port
from tests.postgres import admin_execute, scratch_database


def failure_of(url: str, statement: str = "SELECT 1") -> SQLAlchemyError:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            conn.execute(text(statement))
    except SQLAlchemyError as exc:
        return exc
    finally:
        engine.dispose()
    raise AssertionError(f"{url} answered {statement!r}")


# -- outage or wrong settings ---------------------------------------------------------------
def test_unreachable__nothing_listens_on_the_port__outage() -> None:
    exc = failure_of(f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/pcm")
    assert unreachable(exc) is True


def test_unreachable__postgres_not_accepting_connections__outage() -> None:
    with scratch_database("pcm_outage") as (name, url):
        admin_execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        assert unreachable(failure_of(url)) is True


def test_unreachable__database_or_role_missing__settings_error_not_outage() -> None:
    with scratch_database("pcm_outage") as (_name, url):
        base, name = url.rsplit("/", 1)
        assert unreachable(failure_of(f"{base}/{name}_missing")) is False
        nobody = base.replace("postgres@", "no_such_role_pcm@")
        assert unreachable(failure_of(f"{nobody}/{name}")) is False


def test_unreachable__sqlite_volume_missing_or_table_missing(tmp_path: Path) -> None:
    missing_volume = failure_of(f"sqlite:///{tmp_path / 'not-mounted' / 'pcm.db'}")
    assert unreachable(missing_volume) is True
    no_schema = failure_of(f"sqlite:///{tmp_path / 'empty.db'}", "SELECT * FROM feature_flags")
    assert unreachable(no_schema) is False  # a missing schema is not an outage


def test_unreachable__not_a_database_error__false() -> None:
    assert unreachable(None) is False
    assert unreachable(OSError("disk")) is False


# -- a process started during the outage ------------------------------------------------------
@pytest.fixture
def on_volume(make_settings: Callable[..., Settings], tmp_path: Path) -> Settings:
    """SQLite on its own volume (DATABASE_URL), initialised, its flag state saved in data/."""
    volume = tmp_path / "volume"
    volume.mkdir()
    settings = make_settings(database_url=f"sqlite:///{volume / 'pcm.db'}")
    init_db(settings)
    engine = engine_for(settings)
    FlagRuntime(session_factory(engine), state_file=settings.state_file).refresh(force=True)
    engine.dispose()
    snapshot.reset()
    assert settings.state_file.exists()
    return settings


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what}: not within {timeout} s"
        time.sleep(0.05)


def test_app_start__database_volume_missing__serves_last_known_state_until_it_returns(
    on_volume: Settings, tmp_path: Path
) -> None:
    # Given the database's volume is not mounted when the app starts
    volume, unmounted = tmp_path / "volume", tmp_path / "volume.unmounted"
    volume.rename(unmounted)
    with TestClient(create_app(on_volume)) as c:
        # Then it answers, on the last-known state, and health says so
        health = c.get("/api/health")
        assert health.status_code == 503
        version = health.json()["flags_version"]
        assert version >= 1
        assert health.json()["summary"] == (
            f"database unreachable, serving last-known state version {version}, migrations pending"
        )
        flags = c.get("/api/feature-flags/health").json()
        assert (flags["status"], flags["migrations_pending"]) == ("unhealthy", True)
        assert flags["summary"] == health.json()["summary"]

        # When the volume is back
        unmounted.rename(volume)

        # Then init_db runs, the store is read again, and all is healthy
        wait_for(lambda: c.get("/api/health").status_code == 200, "healthy again")
        body = c.get("/api/health").json()
        assert (body["summary"], body["migrations_pending"]) == ("healthy", False)
        assert body["flags"]["from_last_known_state"] is False


def test_pending_init__database_answers_on_the_second_attempt__runs_once(
    on_volume: Settings, tmp_path: Path
) -> None:
    # Given a process that started while the database volume was missing
    volume, unmounted = tmp_path / "volume", tmp_path / "volume.unmounted"
    volume.rename(unmounted)
    engine = engine_for(on_volume)
    pending = PendingInit(on_volume, engine, interval=600)  # attempts made by hand here
    pending.start()
    try:
        # When the first attempt finds it missing, and a later one finds it back
        assert pending.attempt() is False
        assert pending.error is not None and "unable to open database file" in pending.error
        unmounted.rename(volume)
        assert pending.attempt() is True

        # Then it ran init_db once: the report is kept and further attempts do nothing
        assert (pending.pending, pending.error) == (False, None)
        assert pending.report is not None
        assert pending.report.schema_after == schema_revisions(engine)
        first = pending.report
        assert pending.attempt() is True
        assert pending.report is first
    finally:
        pending.stop()
        engine.dispose()


def test_unreachable__postgres_host_that_never_answers__times_out_as_an_outage() -> None:
    # Given a "server" that takes connections and never says a word (a hung host)
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"postgresql+psycopg://postgres@127.0.0.1:{silent.getsockname()[1]}/pcm"
        found: list[SQLAlchemyError] = []
        attempt = threading.Thread(target=lambda: found.append(failure_of(url)), daemon=True)

        # When the engine connects
        attempt.start()
        attempt.join(timeout=120)  # without a connect timeout it would wait forever

    # Then it gives up on its own, and that is an outage
    assert found, "the connection attempt never gave up"
    assert unreachable(found[0]) is True
