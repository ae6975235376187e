"""init_db and the migrations: idempotent set-up, every revision reversible, empty or filled."""

from __future__ import annotations

import importlib
import stat
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, func, inspect, select
from sqlalchemy.orm import Session, sessionmaker

from backend.core.config import Settings
from backend.db import session as db_session
from backend.db.init_db import InitReport, alembic_config, init_db
from backend.db.models import Base
from backend.db.session import engine_for, session_factory
from backend.flags import DEFAULT_FLAGS, FlagRuntime
from backend.flags.audit import verify_chain
from backend.flags.models import FlagRow, FlagStoreRow
from backend.security.tokens import Role, authenticate_token
from tests.postgres import scratch_database

# Every table a model declares (backend.db.models imports them all); migrations must match.
TABLES = set(Base.metadata.tables)


def stored(sessions: sessionmaker[Session]) -> dict[str, bool]:
    with sessions() as s:
        return {r.name: r.enabled for r in s.scalars(select(FlagRow))}


def tables(engine: Engine) -> set[str]:
    return set(inspect(engine).get_table_names()) - {"alembic_version"}


def migrate(engine: Engine, direction: str, revision: str) -> None:
    """Run alembic on our connection, the way backend/db/init_db.py does."""
    cfg = alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        getattr(command, direction)(cfg, revision)


def revisions() -> list[tuple[str, list[str]]]:
    """Each revision from the first to the heads, with the revisions just below it."""
    script = ScriptDirectory.from_config(alembic_config())
    steps = []
    for r in reversed(list(script.walk_revisions("base", "heads"))):
        down = r.down_revision
        below = ["base"] if down is None else [down] if isinstance(down, str) else list(down)
        steps.append((r.revision, below))
    return steps


# -- init_db --------------------------------------------------------------------------------
def test_a_first_run_creates_schema_flags_and_a_private_admin_token(settings: Settings) -> None:
    report = init_db(settings)
    assert sorted(report.flags_added) == sorted(d.name for d in DEFAULT_FLAGS)
    assert report.admin_token_created is True
    assert report.admin_token_path == settings.admin_token_path
    assert str(settings.sqlite_path) in report.database
    assert stat.S_IMODE(settings.admin_token_path.stat().st_mode) == 0o600
    engine = engine_for(settings)
    try:
        sessions = session_factory(engine)
        assert tables(engine) == TABLES
        assert stored(sessions) == {d.name: d.default for d in DEFAULT_FLAGS}
        with sessions.begin() as s:
            principal = authenticate_token(s, settings.admin_token_path.read_text().strip())
        assert principal is not None
        assert principal.role is Role.ADMIN
    finally:
        engine.dispose()
    again = init_db(settings)
    assert (again.flags_added, again.admin_token_created) == ([], False)


def test_init_db_is_idempotent_and_keeps_operator_state(
    settings: Settings, runtime: FlagRuntime, sessions: sessionmaker[Session]
) -> None:
    token = settings.admin_token_path.read_text()
    runtime.toggle("csrf_tokens_enabled", False, actor="ops", method="api")
    with sessions() as s:
        before = s.scalar(select(FlagStoreRow.version))
    for _ in range(2):
        init_db(settings)
    assert settings.admin_token_path.read_text() == token
    assert stored(sessions)["csrf_tokens_enabled"] is False
    with sessions() as s:
        assert s.scalar(select(FlagStoreRow.version)) == before
        assert s.scalar(select(func.count()).select_from(FlagRow)) == len(DEFAULT_FLAGS)
        assert verify_chain(s).ok


@pytest.mark.parametrize("content", [None, "", "pcm_not-a-real-token"])
def test_a_missing_or_invalid_token_file_gets_a_new_token(
    settings: Settings, initialized: object, sessions: sessionmaker[Session], content: str | None
) -> None:
    old = settings.admin_token_path.read_text().strip()
    if content is None:
        settings.admin_token_path.unlink()
    else:
        settings.admin_token_path.write_text(content)
    assert init_db(settings).admin_token_created is True
    new = settings.admin_token_path.read_text().strip()
    assert new != old
    assert stat.S_IMODE(settings.admin_token_path.stat().st_mode) == 0o600
    with sessions.begin() as s:
        assert authenticate_token(s, new) is not None


def test_init_db__valid_admin_token_writable_by_others__kept_and_made_owner_only(
    settings: Settings, initialized: object
) -> None:
    # Given the admin token file left writable by others (degraded sign-in refuses it)
    token = settings.admin_token_path.read_text()
    settings.admin_token_path.chmod(0o666)

    # When init_db checks it against the database
    report = init_db(settings)

    # Then it is kept, and owner-only again
    assert report.admin_token_created is False
    assert settings.admin_token_path.read_text() == token
    assert stat.S_IMODE(settings.admin_token_path.stat().st_mode) == 0o600


def init_concurrently(settings: list[Settings]) -> list[InitReport | BaseException]:
    """init_db from one thread per settings, started together."""
    results: list[InitReport | BaseException] = []
    go = threading.Barrier(len(settings))

    def run(s: Settings) -> None:
        go.wait()
        try:
            results.append(init_db(s))
        except BaseException as exc:  # reported by the test
            results.append(exc)

    threads = [threading.Thread(target=run, args=(s,)) for s in settings]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    return results


def test_init_db__two_at_once_on_one_data_dir__one_migrates_the_other_finds_it_current(
    settings: Settings,
) -> None:
    # When two processes' workers run init_db on a fresh database at the same moment
    results = init_concurrently([settings, settings])

    # Then the lock lets one migrate and the other finds the schema current
    assert all(isinstance(r, InitReport) for r in results), results
    reports = [r for r in results if isinstance(r, InitReport)]
    assert sorted(r.migrated for r in reports) == [False, True]
    assert sum(r.admin_user_created for r in reports) == 1


def test_init_db__two_instances_on_one_postgres__one_migrates(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    # Given two instances (their own data directories) sharing one PostgreSQL database
    with scratch_database("pcm_init") as (_name, url):
        instances = [
            make_settings(database_url=url, data_dir=tmp_path / f"data{i}") for i in (1, 2)
        ]

        # When both run init_db at the same moment
        results = init_concurrently(instances)

    # Then the advisory lock lets one migrate and the other finds the schema current
    assert all(isinstance(r, InitReport) for r in results), results
    reports = [r for r in results if isinstance(r, InitReport)]
    assert sorted(r.migrated for r in reports) == [False, True]


# -- migrations -----------------------------------------------------------------------------
@pytest.fixture
def bare_engine(tmp_path: Path) -> Iterator[Engine]:
    eng = engine_for(Settings(data_dir=tmp_path / "bare", log_dir=tmp_path / "logs"))
    yield eng
    eng.dispose()


def test_every_revision_upgrades_and_downgrades_on_an_empty_database(
    bare_engine: Engine,
) -> None:
    steps = revisions()
    assert steps, "no migrations found"
    for rev, below in steps:
        before = tables(bare_engine)
        migrate(bare_engine, "upgrade", rev)
        for target in below:
            migrate(bare_engine, "downgrade", target)
            assert tables(bare_engine) <= before, f"downgrade of {rev} left tables behind"
            migrate(bare_engine, "upgrade", rev)
    migrate(bare_engine, "upgrade", "heads")
    assert tables(bare_engine) == TABLES
    migrate(bare_engine, "downgrade", "base")
    assert tables(bare_engine) == set()
    migrate(bare_engine, "upgrade", "heads")
    assert tables(bare_engine) == TABLES


def test_downgrade_and_upgrade_a_filled_database(
    settings: Settings, runtime: FlagRuntime, engine: Engine
) -> None:
    runtime.toggle("csrf_tokens_enabled", False, actor="ops", method="api")
    runtime.rollback(None, actor="ops", method="emergency", reason="drill")
    migrate(engine, "downgrade", "base")
    assert tables(engine) == set()
    migrate(engine, "upgrade", "heads")
    assert tables(engine) == TABLES
    report = init_db(settings)  # the schema is back; seeding makes it usable again
    assert len(report.flags_added) == len(DEFAULT_FLAGS)
    assert report.admin_token_created is True
    sessions = session_factory(engine)
    assert stored(sessions) == {d.name: d.default for d in DEFAULT_FLAGS}
    rt = FlagRuntime(sessions)
    rt.toggle("csrf_tokens_enabled", False, actor="ops", method="api")
    with sessions() as s:
        assert verify_chain(s).ok


def test_later_revisions_go_down_and_up_without_losing_flag_data(
    runtime: FlagRuntime, engine: Engine, sessions: sessionmaker[Session]
) -> None:
    runtime.toggle("csrf_tokens_enabled", False, actor="ops", method="api")
    runtime.rollback(["xss_protection_enabled"], actor="ops", method="cli", reason="drill")
    values = stored(sessions)
    first, _ = revisions()[0]  # the revision that creates the flag store
    migrate(engine, "downgrade", first)
    migrate(engine, "upgrade", "heads")
    assert tables(engine) == TABLES
    assert stored(sessions) == values
    with sessions() as s:
        chain = verify_chain(s)
    assert (chain.ok, chain.events) == (True, 2)


def test_the_models_match_the_migrations(engine: Engine) -> None:
    # A model changed without a migration shows up here.
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


# -- the runbook's import -------------------------------------------------------------------
def test_the_engine_is_importable_as_the_runbook_shows(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PCM_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("PCM_LOG_DIR", str(tmp_path / "logs"))
    db_session._default_engine.cache_clear()
    try:
        module = importlib.import_module("backend.db.session")
        from backend.db.session import engine

        assert engine is module.engine
        assert isinstance(engine, Engine)
        # Opened read-write, never created: a missing database is not replaced by an empty one.
        assert engine.url.database == f"file:{tmp_path / 'data' / 'pcm_ops_tools.db'}"
        assert not (tmp_path / "data" / "pcm_ops_tools.db").exists()
        with pytest.raises(AttributeError):
            module.no_such_name  # noqa: B018
    finally:
        db_session._default_engine().dispose()
        db_session._default_engine.cache_clear()
