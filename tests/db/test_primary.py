"""`postgresql_support` switches the primary database at start-up: the decision (never opening
a database), the 409 without PCM_POSTGRES_URL, and the switch itself both ways on the real
PostgreSQL, including with PostgreSQL refusing connections (the runbook's symptom)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from backend.core import primary_file
from backend.core.config import PROJECT_ROOT, Settings
from backend.db.backup import list_backups
from backend.db.init_db import InitReport
from backend.db.primary import desired_backend, ensure_primary
from backend.flags import FlagRuntime, journal
from backend.main import create_app
from tests.postgres import Scratch, scratch_database

FLAG = "postgresql_support"
CSRF = "csrf_tokens_enabled"
XSS = "xss_protection_enabled"
Headers = dict[str, str]


@pytest.fixture
def pg() -> Iterator[Scratch]:
    with scratch_database("pcm_primary") as (name, url):
        yield Scratch(name, url)


def toggle(c: TestClient, headers: Headers, name: str, enabled: bool) -> Any:
    r = c.post(
        "/api/feature-flags/toggle", headers=headers, json={"flag_name": name, "enabled": enabled}
    )
    assert r.status_code == 200, r.text
    return r.json()


def flag(c: TestClient, headers: Headers, name: str) -> dict[str, Any]:
    body: dict[str, Any] = c.get(f"/api/feature-flags/{name}", headers=headers).json()
    return body


def runbook_check(settings: Settings) -> str:
    """The runbook's `from backend.db.session import engine; print('DB OK')`, run as the
    operator runs it, with a real query so that it proves the connection."""
    code = (
        "from sqlalchemy import text\n"
        "from backend.db.session import engine\n"
        "with engine.connect() as c: c.execute(text('SELECT 1'))\n"
        "print(engine.dialect.name, 'DB OK')\n"
    )
    env = {"PCM_DATA_DIR": str(settings.data_dir), "PCM_LOG_DIR": str(settings.log_dir)}
    if settings.postgres_url:
        env["PCM_POSTGRES_URL"] = settings.postgres_url
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=PROJECT_ROOT,
        env={"PATH": "/usr/bin:/bin", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


# -- the decision -----------------------------------------------------------------------------
def test_desired_backend__without_postgres_url__sqlite_whatever_the_flag(
    make_settings: Callable[..., Settings],
) -> None:
    # Given the flag forced on by the environment, but no PostgreSQL named
    settings = make_settings(flag_overrides={FLAG: True})
    # Then the primary stays the SQLite file, and the reason says what is missing
    assert desired_backend(settings) == ("sqlite", "PCM_POSTGRES_URL is not set")


def test_desired_backend__rollback_mode_over_environment_over_default(
    make_settings: Callable[..., Settings], pg: Scratch
) -> None:
    # Given PCM_POSTGRES_URL and no last-known flag state (a fresh data directory)
    fresh = make_settings(postgres_url=pg.url)
    env_on = make_settings(postgres_url=pg.url, flag_overrides={FLAG: True})
    both = make_settings(postgres_url=pg.url, flag_overrides={FLAG: True}, rollback_mode=True)
    # Then the default is SQLite, the environment moves it, and rollback mode wins over both
    assert desired_backend(fresh) == (
        "sqlite",
        "postgresql_support off, its default: no last-known flag state",
    )
    assert desired_backend(env_on) == (
        "postgresql",
        "postgresql_support on, FEATURE_FLAG_POSTGRESQL_SUPPORT",
    )
    assert desired_backend(both) == ("sqlite", "postgresql_support off, rollback mode")


def test_desired_backend__last_known_on_then_a_journaled_rollback__without_any_database(
    make_settings: Callable[..., Settings],
    make_runtime: Callable[..., FlagRuntime],
    pg: Scratch,
) -> None:
    # Given the flag turned on through this instance, its last-known state saved
    settings = make_settings(postgres_url=pg.url)
    runtime = make_runtime(journal_file=settings.rollback_journal_file)
    runtime.refresh(force=True)
    runtime.toggle(FLAG, True, actor="ops", method="api")
    settings.sqlite_path.unlink()  # no database to ask: the decision must not need one
    assert desired_backend(settings) == (
        "postgresql",
        "postgresql_support on, last-known flag state",
    )
    # When a rollback of it is journaled (the database was down when it was made)
    journal.append(
        settings.rollback_journal_file,
        journal.new_entry(
            kind="toggle", names=[FLAG], actor="ops", method="api", reason="", enabled=False
        ),
    )
    # Then the next start goes back to SQLite
    assert desired_backend(settings) == (
        "sqlite",
        "postgresql_support off, rollback journaled while the database was down",
    )


# -- enabling without PCM_POSTGRES_URL --------------------------------------------------------
def test_toggle__enable_without_postgres_url__409_set_it_first_and_nothing_written(
    open_client: Callable[..., TestClient], admin_headers: Headers
) -> None:
    c = open_client()
    audited = c.get("/api/feature-flags/audit", headers=admin_headers).json()["total"]
    # When the flag is enabled on an instance without PCM_POSTGRES_URL
    r = c.post(
        "/api/feature-flags/toggle",
        headers=admin_headers,
        json={"flag_name": FLAG, "enabled": True},
    )
    # Then it is refused with the fix in the message, and nothing is stored
    assert r.status_code == 409
    assert "set PCM_POSTGRES_URL first" in r.json()["detail"]
    assert flag(c, admin_headers, FLAG)["enabled"] is False
    assert c.get("/api/feature-flags/audit", headers=admin_headers).json()["total"] == audited
    # and disabling (a rollback) is always accepted
    assert toggle(c, admin_headers, FLAG, False)["changed"] is False


def test_toggle__enable_in_the_console_without_postgres_url__409_page_says_why(
    open_client: Callable[..., TestClient], admin_headers: Headers
) -> None:
    c = open_client()
    r = c.post(f"/flags/{FLAG}/toggle", headers=admin_headers, data={"enabled": "true"})
    assert r.status_code == 409
    assert "set PCM_POSTGRES_URL first" in r.text


def test_toggle__database_url_pins_the_database__accepted_and_health_says_it_only_reports(
    open_client: Callable[..., TestClient], admin_headers: Headers, settings: Settings
) -> None:
    c = open_client(database_url=settings.sqlite_url)
    assert toggle(c, admin_headers, FLAG, True)["flag"]["enabled"] is True
    database = c.get("/api/health").json()["database"]
    assert database["pinned_by_database_url"] is True
    assert "only reports" in database["switch"]
    assert "only reports" in flag(c, admin_headers, FLAG)["description"]


def test_ensure_primary__database_url_pins_it__no_switch_and_no_primary_file(
    make_settings: Callable[..., Settings], pg: Scratch
) -> None:
    # Given DATABASE_URL, and PCM_POSTGRES_URL with the flag forced on
    settings = make_settings(database_url=pg.url, postgres_url=pg.url, flag_overrides={FLAG: True})
    # When the start-up looks at the primary database
    switch = ensure_primary(settings)
    # Then nothing moves: the flag only reports
    assert (switch.backend, switch.switched) == ("postgresql", False)
    assert "only reports" in switch.note
    assert not settings.primary_state_file.exists()


# -- the switch on the real PostgreSQL --------------------------------------------------------
WORKER = (
    "from backend.core.config import from_environ\n"
    "from backend.db.primary import ensure_primary\n"
    "switch = ensure_primary(from_environ())\n"
    "print(switch.switched, switch.backend)\n"
)


def test_ensure_primary__two_workers_at_once__one_switches_the_other_finds_it_done(
    settings: Settings, initialized: InitReport, pg: Scratch
) -> None:
    # Given two workers of one server starting together, the flag forced on
    env = {
        "PATH": "/usr/bin:/bin",
        "PCM_DATA_DIR": str(settings.data_dir),
        "PCM_LOG_DIR": str(settings.log_dir),
        "PCM_POSTGRES_URL": pg.url,
        "FEATURE_FLAG_POSTGRESQL_SUPPORT": "true",
    }
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [w.communicate(timeout=120) for w in workers]
    # Then one copies, the other waits for it and finds the switch made
    assert sorted(out.strip() for out, _ in outputs) == [
        "False postgresql",
        "True postgresql",
    ], outputs
    assert primary_file.read(settings.primary_state_file).backend == "postgresql"


def test_switch__on_then_off__data_moves_both_ways_and_the_old_file_is_a_backup(
    make_settings: Callable[..., Settings],
    initialized: InitReport,
    admin_headers: Headers,
    pg: Scratch,
) -> None:
    settings = make_settings(postgres_url=pg.url)
    # Given the flag enabled on SQLite (taking effect on restart)
    with TestClient(create_app(settings)) as c:
        toggle(c, admin_headers, CSRF, False)
        assert toggle(c, admin_headers, FLAG, True)["flag"]["pending_restart"] is True
        assert c.get("/api/health").json()["database"]["backend"] == "sqlite"
    # When the app restarts
    with TestClient(create_app(settings)) as c:
        # Then it runs on PostgreSQL with everything SQLite held, the audit chain verified
        health = c.get("/api/health")
        database = health.json()["database"]
        assert health.status_code == 200
        assert (database["backend"], database["primary"]) == ("postgresql", "postgresql")
        assert database["switch"].startswith("switched from sqlite, ")
        assert database["switch"].endswith("rows moved, audit chain verified")
        assert database["warning"] is None
        assert c.get("/api/feature-flags/audit/verify", headers=admin_headers).json()["ok"]
        assert flag(c, admin_headers, CSRF)["enabled"] is False
        assert flag(c, admin_headers, FLAG)["pending_restart"] is False
        assert [
            u["username"] for u in c.get("/api/users", headers=admin_headers).json()["items"]
        ] == ["admin"]
        # and changes made there ...
        toggle(c, admin_headers, XSS, False)
        assert toggle(c, admin_headers, FLAG, False)["flag"]["pending_restart"] is True
    assert runbook_check(settings) == "postgresql DB OK"
    # ... are on SQLite after the flag is off and the app restarted
    with TestClient(create_app(settings)) as c:
        database = c.get("/api/health").json()["database"]
        assert (database["backend"], database["primary"]) == ("sqlite", "sqlite")
        assert database["switch"].startswith("switched from postgresql, ")
        assert flag(c, admin_headers, XSS)["enabled"] is False
        assert flag(c, admin_headers, CSRF)["enabled"] is False
        assert c.get("/api/feature-flags/audit/verify", headers=admin_headers).json()["ok"]
    assert runbook_check(settings) == "sqlite DB OK"
    assert list_backups(settings), "the previous SQLite file is kept as a backup"
    log = settings.log_file.read_text()
    assert "Database backend: postgresql (switched from sqlite, " in log
    assert "Database backend: sqlite (switched from postgresql, " in log


def test_switch__postgresql_down__runbook_rollback_then_sqlite_with_a_warning_then_refused(
    make_settings: Callable[..., Settings],
    initialized: InitReport,
    admin_headers: Headers,
    pg: Scratch,
) -> None:
    settings = make_settings(postgres_url=pg.url)
    with TestClient(create_app(settings)) as c:
        toggle(c, admin_headers, FLAG, True)
    with TestClient(create_app(settings)) as c:
        toggle(c, admin_headers, CSRF, False)  # written on PostgreSQL only
    synced_at = primary_file.read(settings.primary_state_file).synced_at
    # Given PostgreSQL refusing connections
    pg.down()
    with TestClient(create_app(settings)) as c:
        # When the runbook's rollback is run
        r = c.post(
            "/api/feature-flags/toggle",
            headers=admin_headers,
            json={"flag_name": FLAG, "enabled": False},
        )
        # Then it is journaled, and served
        assert r.status_code == 200, r.text
        assert r.json()["journal_id"]
        assert flag(c, admin_headers, FLAG)["enabled"] is False
    # When the app restarts
    with TestClient(create_app(settings)) as c:
        # Then it serves from SQLite, healthy, warning that PostgreSQL's writes are not here
        health = c.get("/api/health")
        database = health.json()["database"]
        assert health.status_code == 200
        assert (database["backend"], database["primary"]) == ("sqlite", "sqlite")
        assert database["unsynced_since"] == synced_at
        assert "pcm-ops db sync --from postgresql" in database["warning"]
        assert flag(c, admin_headers, FLAG)["enabled"] is False  # the journal, replayed
        verified = c.get("/api/feature-flags/audit/verify", headers=admin_headers).json()
        assert verified["ok"] is True, verified  # checkpoints restarted on the SQLite chain
        toggle(c, admin_headers, XSS, False)  # written on SQLite only
    assert runbook_check(settings) == "sqlite DB OK"
    assert "pcm-ops db sync --from postgresql" in settings.log_file.read_text()
    # When PostgreSQL answers again and the flag is turned on before any sync
    pg.up()
    with TestClient(create_app(settings)) as c:
        toggle(c, admin_headers, FLAG, True)
    switch = ensure_primary(settings)
    # Then the copy that would overwrite PostgreSQL's own writes is refused: still SQLite
    assert switch.backend == "sqlite"
    assert switch.refused is not None
    assert "switch to postgresql refused, staying on sqlite" in switch.note
    with TestClient(create_app(settings)) as c:
        database = c.get("/api/health").json()["database"]
        assert database["backend"] == "sqlite"
        assert "refused" in database["switch"]
        assert flag(c, admin_headers, FLAG)["pending_restart"] is True
