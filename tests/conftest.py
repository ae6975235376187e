"""Shared fixtures: settings on temp dirs, a migrated and seeded database, a flag runtime,
and an in-process app with the admin token. Nothing here reads the developer's environment.

The database is a SQLite file per test; with `--backend=postgresql` it is a database on the
real PostgreSQL server instead (tests/postgres.py), so that the same tests prove both paths.
Tests that are about SQLite itself carry `@pytest.mark.sqlite_only("why")` and are skipped,
with that reason, on PostgreSQL."""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from backend.core import log as core_log
from backend.core.config import Settings, get_settings
from backend.db.init_db import InitReport, init_db
from backend.db.session import engine_for, session_factory
from backend.flags import FlagRuntime, snapshot
from backend.main import create_app
from tests.environment import is_leaky
from tests.postgres import SessionDatabases, create_database, require_server, url_of

BACKENDS = ("sqlite", "postgresql")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--backend",
        choices=BACKENDS,
        default="sqlite",
        help="the database the shared fixtures give each test (default: sqlite)",
    )


def pytest_report_header(config: pytest.Config) -> str:
    return f"database backend: {config.getoption('backend')}"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """On PostgreSQL, skip the tests that are about SQLite itself, saying why."""
    if config.getoption("backend") == "sqlite":
        return
    for item in items:
        marker = item.get_closest_marker("sqlite_only")
        if marker is not None:
            why = marker.args[0] if marker.args else "tests SQLite itself"
            item.add_marker(pytest.mark.skip(reason=f"SQLite only: {why}"))


def _clear_leaky_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if is_leaky(key):
            monkeypatch.delenv(key)


@pytest.fixture(autouse=True)
def isolated_process(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No outer env var leaks in, and the process-global snapshot starts and ends empty."""
    _clear_leaky_env(monkeypatch)
    get_settings.cache_clear()
    snapshot.reset()
    yield
    snapshot.reset()
    get_settings.cache_clear()
    _drop_log_handlers()


def _drop_log_handlers() -> None:
    # configure_logging attaches file handlers to our loggers; a test's tmp dir must not keep one.
    for name in ("pcm_ops_tools", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        for handler in list(logger.handlers):
            if getattr(handler, core_log._MARK, None) is not None:
                logger.removeHandler(handler)
                handler.close()


@pytest.fixture(scope="session")
def backend(request: pytest.FixtureRequest) -> str:
    """The database the suite runs on: sqlite (the default) or postgresql."""
    return str(request.config.getoption("backend"))


@pytest.fixture(scope="session")
def session_databases(backend: str) -> Iterator[SessionDatabases | None]:
    """On PostgreSQL, this session's template, seeded and empty databases; dropped at the end."""
    if backend == "sqlite":
        yield None
        return
    require_server()
    databases = SessionDatabases(prefix=f"pcm_suite_{uuid.uuid4().hex[:10]}")
    try:
        yield databases
    finally:
        databases.drop_all()


@pytest.fixture
def database_url(
    request: pytest.FixtureRequest, session_databases: SessionDatabases | None
) -> str | None:
    """The URL of this test's database: None on SQLite (the data dir's file); on PostgreSQL
    the seeded database when the test uses `initialized`, else an empty one, reset first."""
    if session_databases is None:
        return None
    if "initialized" in request.fixturenames:
        request.getfixturevalue("initialized_template")
        return session_databases.reset_seeded()
    return session_databases.reset_empty()


@pytest.fixture
def make_settings(tmp_path: Path, database_url: str | None) -> Callable[..., Settings]:
    """Settings on this test's temp dirs and database; keyword arguments override fields."""

    def build(**fields: Any) -> Settings:
        fields.setdefault("data_dir", tmp_path / "data")
        fields.setdefault("log_dir", tmp_path / "logs")
        if database_url is not None:
            fields.setdefault("database_url", database_url)
        return Settings(**fields)

    return build


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings()


@pytest.fixture(scope="session")
def initialized_template(
    tmp_path_factory: pytest.TempPathFactory, session_databases: SessionDatabases | None
) -> tuple[Path, InitReport]:
    """One init_db run per session; it hashes the admin password, which is slow on purpose.
    On PostgreSQL it sets up the template database, whose rows each test gets back."""
    root = tmp_path_factory.mktemp("template")
    fields: dict[str, Any] = {"data_dir": root / "data", "log_dir": root / "logs"}
    if session_databases is not None:
        create_database(session_databases.template)
        fields["database_url"] = url_of(session_databases.template)
    with pytest.MonkeyPatch.context() as mp:
        _clear_leaky_env(mp)
        report = init_db(Settings(**fields))
    if session_databases is not None:
        session_databases.capture_template()
    return root / "data", report


@pytest.fixture
def initialized(settings: Settings, initialized_template: tuple[Path, InitReport]) -> InitReport:
    """The schema migrated to the heads, flags seeded, the admin token written: a copy of the
    data directory init_db made (tests of init_db itself call it directly)."""
    template, report = initialized_template
    shutil.copytree(template, settings.data_dir, dirs_exist_ok=True)
    settings.log_dir.mkdir(parents=True, exist_ok=True)
    return dataclasses.replace(
        report,
        database=settings.effective_database_url,
        admin_token_path=settings.admin_token_path,
    )


@pytest.fixture
def engine(settings: Settings, initialized: InitReport) -> Iterator[Engine]:
    eng = engine_for(settings)
    yield eng
    eng.dispose()


@pytest.fixture
def sessions(engine: Engine) -> sessionmaker[Session]:
    return session_factory(engine)


@pytest.fixture
def make_runtime(
    sessions: sessionmaker[Session], settings: Settings
) -> Iterator[Callable[..., FlagRuntime]]:
    """Runtimes on the test database (not refreshed); their pollers stop at teardown."""
    made: list[FlagRuntime] = []

    def build(**kwargs: Any) -> FlagRuntime:
        kwargs.setdefault("state_file", settings.state_file)
        rt = FlagRuntime(kwargs.pop("sessions", sessions), **kwargs)
        made.append(rt)
        return rt

    yield build
    for rt in made:
        rt.stop_polling()


@pytest.fixture
def runtime(make_runtime: Callable[..., FlagRuntime]) -> FlagRuntime:
    """A runtime whose snapshot is loaded and published."""
    rt = make_runtime()
    rt.refresh(force=True)
    return rt


@pytest.fixture
def admin_token(settings: Settings, initialized: InitReport) -> str:
    return settings.admin_token_path.read_text().strip()


@pytest.fixture
def admin_headers(admin_token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {admin_token}"}


@pytest.fixture
def open_client(
    make_settings: Callable[..., Settings], initialized: InitReport
) -> Iterator[Callable[..., TestClient]]:
    """Start the app in-process (lifespan included) on settings built from keyword overrides."""
    with ExitStack() as stack:

        def start(**fields: Any) -> TestClient:
            return stack.enter_context(TestClient(create_app(make_settings(**fields))))

        yield start


@pytest.fixture
def client(open_client: Callable[..., TestClient]) -> TestClient:
    return open_client()
