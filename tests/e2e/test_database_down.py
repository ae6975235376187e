"""The database goes down for real (PostgreSQL stops accepting connections and its backends are
terminated): authentication degrades to known tokens, rollbacks are journaled and served by every
worker, and the journal is replayed once, with audit events and a record, when it comes back.

CI sets PCM_REQUIRE_POSTGRES=1, so there a missing server fails instead of skipping.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from alembic import command
from alembic.script import ScriptDirectory
from fastapi.testclient import TestClient

from backend.core.config import Settings
from backend.db.init_db import alembic_config, init_db, schema_revisions
from backend.db.session import engine_for, make_engine, session_factory
from backend.flags import DEFAULT_FLAGS
from backend.flags.last_known import saved_version
from backend.main import create_app
from backend.security.tokens import Role, create_token
from tests.e2e.conftest import Server, free_port
from tests.postgres import Scratch, scratch_database

ROLLBACK_VALUES = {d.name: d.rollback_value for d in DEFAULT_FLAGS}
TO_CHANGE = sorted(d.name for d in DEFAULT_FLAGS if d.default != d.rollback_value)
SUFFIX = "journaled while the database was down at"


@pytest.fixture
def pg() -> Iterator[Scratch]:
    with scratch_database("pcm_down") as (name, url):
        yield Scratch(name, url)


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> float:
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < timeout, f"{what}: not within {timeout} s"
        time.sleep(0.01)
    return time.monotonic() - started


def journaled_records(c: httpx.Client | TestClient) -> list[dict[str, Any]]:
    items = c.get("/api/rollback-records").json()["items"]
    return [r for r in items if SUFFIX in r["trigger"]]


# -- the real server, two workers -----------------------------------------------------------
def test_emergency_rollback_with_the_database_down_is_journaled_served_and_replayed(
    server_dirs: Server, pg: Scratch
) -> None:
    started = server_dirs.start({"WORKERS": "2", "DATABASE_URL": pg.url})
    assert started.returncode == 0, started.stdout + started.stderr
    server_dirs.env["DATABASE_URL"] = pg.url  # ./stop.sh at teardown sees the same settings
    with server_dirs.client() as c:
        assert c.get("/api/feature-flags/csrf_tokens_enabled").json()["enabled"] is True
        records_before = c.get("/api/rollback-records").json()["total"]

    pg.down()
    with server_dirs.client() as c:
        r = c.post("/api/feature-flags/emergency-rollback", json={"reason": "5xx after deploy"})
        assert r.status_code == 200, r.text
        result = r.json()
        enable = c.post(
            "/api/feature-flags/toggle", json={"flag_name": "csrf_tokens_enabled", "enabled": True}
        )
    assert (result["verification"], result["record_id"]) == ("journaled", None)
    assert [ch["flag"] for ch in result["changed"]] == TO_CHANGE
    assert enable.status_code == 503
    assert "cannot enable 'csrf_tokens_enabled'" in enable.json()["detail"]

    def every_worker_serves_the_rollback() -> bool:
        for _ in range(12):  # fresh connections spread over both workers
            with server_dirs.client() as c:
                body = c.get("/api/feature-flags").json()
            if body["journaled_rollbacks"] != [result["journal_id"]]:
                return False
            if {f["name"]: f["enabled"] for f in body["flags"]} != ROLLBACK_VALUES:
                return False
        return True

    wait_until(every_worker_serves_the_rollback, 2.0, "both workers serve the journal")
    with httpx.Client(base_url=server_dirs.url, timeout=10) as anon:
        health = anon.get("/api/health")
        assert health.status_code == 503
        assert health.json()["journaled_rollbacks"] == [result["journal_id"]]
        flags_health = anon.get("/api/feature-flags/health").json()
        assert flags_health["journaled_rollbacks"] == [result["journal_id"]]
        stranger = anon.get(
            "/api/feature-flags", headers={"Authorization": "Bearer pcm_not-a-known-token"}
        )
        assert stranger.status_code == 503  # not verifiable now, and never accepted
    journal = server_dirs.data_dir / "rollback_journal.jsonl"
    assert json.loads(journal.read_text())["id"] == result["journal_id"]

    pg.up()
    with httpx.Client(base_url=server_dirs.url, timeout=10) as anon:
        wait_until(
            lambda: anon.get("/api/health").json()["journaled_rollbacks"] == [], 10, "replay"
        )
    assert not journal.exists()
    assert len(list(server_dirs.data_dir.glob("rollback_journal.applied-*.jsonl"))) == 1
    with server_dirs.client() as c:
        wait_until(lambda: c.get("/api/health").status_code == 200, 10, "healthy again")
        assert c.get("/api/rollback-records").json()["total"] == records_before + 1
        (record,) = journaled_records(c)
        assert (record["method"], record["actor"], record["feature"]) == (
            "emergency",
            "token:admin",
            "ALL",
        )
        assert record["trigger"].startswith("5xx after deploy (")
        assert result["journal_id"] in record["trigger"]
        events = c.get("/api/feature-flags/audit?method=emergency").json()["items"]
        assert sorted(e["flag_name"] for e in events if SUFFIX in e["reason"]) == TO_CHANGE
        assert c.get("/api/feature-flags/audit/verify").json()["ok"] is True
        flags = c.get("/api/feature-flags").json()["flags"]
        assert {f["name"]: (f["enabled"], f["source"]) for f in flags} == {
            n: (v, "stored") for n, v in ROLLBACK_VALUES.items()
        }


# -- the server started while the database is down ------------------------------------------
def schema_of(url: str) -> tuple[str, ...]:
    engine = make_engine(url)
    try:
        return schema_revisions(engine)
    finally:
        engine.dispose()


def downgrade_newest_migration(url: str) -> str:
    """What a deploy whose migration has not run yet finds: the schema without the newest
    revision (the highest-numbered head). Returns that revision."""
    cfg = alembic_config()
    newest = max(ScriptDirectory.from_config(cfg).get_heads())
    engine = make_engine(url)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, f"{newest}@-1")
    engine.dispose()
    return newest


def test_server_start__database_unreachable__serves_last_known_state_then_migrates_and_replays(
    server_dirs: Server, pg: Scratch
) -> None:
    # Given a server that ran on the database and saved its flag state, one flag disabled
    started = server_dirs.start({"WORKERS": "2", "DATABASE_URL": pg.url})
    assert started.returncode == 0, started.stdout + started.stderr
    server_dirs.env["DATABASE_URL"] = pg.url
    with server_dirs.client() as c:
        toggled = c.post(
            "/api/feature-flags/toggle",
            json={"flag_name": "xss_protection_enabled", "enabled": False},
        )
        assert toggled.status_code == 200, toggled.text
    version = toggled.json()["version"]
    state_file = server_dirs.data_dir / "flags_last_known.json"
    wait_until(lambda: saved_version(state_file) == version, 10, "last-known state saved")
    assert server_dirs.stop().returncode == 0
    # ... then a deploy during an outage: new code, its migration not run, the database down
    head = schema_of(pg.url)
    newest = downgrade_newest_migration(pg.url)
    assert newest in head
    assert newest not in schema_of(pg.url)
    pg.down()

    # When the server is started
    degraded = server_dirs.start()

    # Then it answers: unhealthy, on the last-known state, and it takes an emergency rollback
    assert degraded.returncode == 0, degraded.stdout + degraded.stderr
    assert "The database is unreachable" in degraded.stdout
    assert f"DEGRADED: database unreachable, serving last-known state version {version}" in (
        degraded.stdout
    )
    expected = f"database unreachable, serving last-known state version {version}"
    with httpx.Client(base_url=server_dirs.url, timeout=10) as anon:
        health = anon.get("/api/health")
        flags_health = anon.get("/api/feature-flags/health")
    assert health.status_code == 503
    assert health.json()["summary"] == f"{expected}, migrations pending"
    assert health.json()["migrations_pending"] is True
    assert flags_health.status_code == 503
    assert flags_health.json()["summary"] == f"{expected}, migrations pending"
    with server_dirs.client() as c:  # the admin token: its 0600 file vouches for it
        served = c.get("/api/feature-flags").json()
        assert (served["version"], served["from_last_known_state"]) == (version, True)
        assert c.get("/api/feature-flags/xss_protection_enabled").json()["enabled"] is False
        assert c.get("/api/feature-flags/csrf_tokens_enabled").json()["enabled"] is True
        r = c.post("/api/feature-flags/emergency-rollback", json={"reason": "outage at deploy"})
        assert r.status_code == 200, r.text
        result = r.json()
        assert (result["verification"], result["record_id"]) == ("journaled", None)
        assert c.get("/api/feature-flags/csrf_tokens_enabled").json()["enabled"] is False
        summary = c.get("/api/health").json()["summary"]
    assert summary == f"{expected}, 1 journaled rollback(s) to replay, migrations pending"

    # When the database answers again
    pg.up()

    # Then the schema is upgraded (by one worker), the journal replayed, and all is healthy
    with httpx.Client(base_url=server_dirs.url, timeout=10) as anon:
        wait_until(lambda: anon.get("/api/health").status_code == 200, 30, "healthy again")
        body = anon.get("/api/health").json()
    assert (body["summary"], body["migrations_pending"], body["journaled_rollbacks"]) == (
        "healthy",
        False,
        [],
    )
    assert schema_of(pg.url) == head
    log_text = server_dirs.log_file.read_text()
    assert log_text.count("Database answers again: schema upgraded from") == 1, log_text
    assert not (server_dirs.data_dir / "rollback_journal.jsonl").exists()
    with server_dirs.client() as c:
        (record,) = journaled_records(c)
        assert (record["method"], record["feature"]) == ("emergency", "ALL")
        assert result["journal_id"] in record["trigger"]
        flags = c.get("/api/feature-flags").json()
        assert flags["from_last_known_state"] is False
        assert {f["name"]: (f["enabled"], f["source"]) for f in flags["flags"]} == {
            n: (v, "stored") for n, v in ROLLBACK_VALUES.items()
        }
        assert c.get("/api/feature-flags/audit/verify").json()["ok"] is True


def test_server_start__database_unreachable_and_no_last_known_state__refused_clearly(
    server_dirs: Server,
) -> None:
    # Given a fresh machine whose database does not answer (nothing listens on the port)
    closed = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/pcm"

    # When the server is started
    result = server_dirs.start({"DATABASE_URL": closed})

    # Then it refuses, saying why and what to do, without a traceback
    assert result.returncode == 5, result.stdout + result.stderr
    assert "Cannot start: the database is unreachable" in result.stdout
    assert "no last-known flag state" in result.stdout
    assert "start the database first" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{server_dirs.url}/api/health", timeout=2)


# -- the CLI with neither server nor database -----------------------------------------------
def test_cli_journals_with_server_and_database_down_and_a_later_server_replays(
    server_dirs: Server, pg: Scratch
) -> None:
    env = {"DATABASE_URL": pg.url}
    server_dirs.env.update(env)
    assert server_dirs.run(".venv/bin/pcm-ops", "init-db").returncode == 0
    listed = server_dirs.run(".venv/bin/pcm-ops", "flags", "list", "--json")
    assert listed.returncode == 0, listed.stderr  # reads the database: the last-known state

    pg.down()
    flag = server_dirs.run("./quick-rollback.sh", "xss_protection_enabled")
    assert flag.returncode == 0, flag.stdout + flag.stderr
    assert "ROLLBACK SUCCESSFUL" in flag.stdout
    assert "journaled as j-" in flag.stdout
    emergency = server_dirs.run(
        ".venv/bin/pcm-ops", "rollback", "emergency", "--reason", "db and server down"
    )
    assert emergency.returncode == 0, emergency.stdout + emergency.stderr
    assert "verification journaled" in emergency.stdout
    refused = server_dirs.run(".venv/bin/pcm-ops", "flags", "enable", "csrf_tokens_enabled")
    assert refused.returncode == 5
    assert "cannot enable" in refused.stderr
    now = json.loads(server_dirs.run(".venv/bin/pcm-ops", "flags", "list", "--json").stdout)
    assert {f["name"]: f["enabled"] for f in now["flags"]} == ROLLBACK_VALUES
    journal = server_dirs.data_dir / "rollback_journal.jsonl"
    assert len(journal.read_text().splitlines()) == 2

    pg.up()
    assert server_dirs.start().returncode == 0  # start-up replays the journal
    assert not journal.exists()
    with server_dirs.client() as c:
        records = journaled_records(c)
        assert sorted(r["method"] for r in records) == ["emergency", "feature_flag"]
        assert {r["actor"].split(":")[0] for r in records} == {"cli"}
        assert c.get("/api/feature-flags/audit/verify").json()["ok"] is True
        assert c.get("/api/health").json()["journaled_rollbacks"] == []


# -- authentication while the database is down (in-process app, real PostgreSQL) -----------
@pytest.fixture
def pg_settings(pg: Scratch, make_settings: Callable[..., Settings]) -> Settings:
    settings = make_settings(database_url=pg.url)
    init_db(settings)
    return settings


def test_only_known_tokens_authenticate_while_the_database_is_down(
    pg: Scratch, pg_settings: Settings
) -> None:
    admin = {"Authorization": f"Bearer {pg_settings.admin_token_path.read_text().strip()}"}
    password = pg_settings.admin_password_path.read_text().strip()
    tokens: dict[str, dict[str, str]] = {}
    engine = engine_for(pg_settings)
    with session_factory(engine).begin() as s:  # as `pcm-ops token create` does
        for name in ("grafana", "never-used"):
            tokens[name] = {
                "Authorization": f"Bearer {create_token(s, name=name, role=Role.VIEWER)[1]}"
            }
    engine.dispose()
    with TestClient(create_app(pg_settings)) as c:
        assert c.get("/api/feature-flags", headers=tokens["grafana"]).status_code == 200
        login = c.post("/api/auth/login", json={"username": "admin", "password": password})
        assert login.status_code == 200
        assert c.get("/api/feature-flags").status_code == 200  # the cookie session

        pg.down()
        seen, unseen = tokens["grafana"], tokens["never-used"]
        assert c.get("/api/feature-flags", headers=seen).status_code == 200
        assert c.post("/api/feature-flags/emergency-rollback", headers=seen).status_code == 403
        assert c.get("/api/feature-flags", headers=unseen).status_code == 503
        assert c.get("/api/feature-flags").status_code == 503  # cookie sessions need the database

        # The admin token was never verified by this app: only its 0600 file vouches for it.
        pg_settings.admin_token_path.chmod(0o644)
        assert c.get("/api/feature-flags", headers=admin).status_code == 503
        pg_settings.admin_token_path.chmod(0o600)
        r = c.post("/api/feature-flags/csrf_tokens_enabled/rollback", headers=admin)
        assert r.status_code == 200, r.text
        assert (r.json()["verification"], r.json()["changed"]) == (
            "journaled",
            [{"flag": "csrf_tokens_enabled", "from": True, "to": False}],
        )
