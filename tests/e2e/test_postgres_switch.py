"""`postgresql_support` with real servers (./start.sh, ./stop.sh) on the real PostgreSQL: the data
moves to PostgreSQL and back with the switch, and the runbook's "Database Connection Rollback"
works while PostgreSQL refuses connections (API, CLI, quick-rollback.sh), the next start
coming up on SQLite with a warning.

CI sets PCM_REQUIRE_POSTGRES=1, so there a missing server fails instead of skipping.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.aws.conftest import ACCOUNT, Emulator, emulator, moto_url
from tests.e2e.conftest import Server
from tests.postgres import Scratch, scratch_database

__all__ = ["emulator", "moto_url"]

FLAG = "postgresql_support"
CSRF = "csrf_tokens_enabled"
XSS = "xss_protection_enabled"
RUNBOOK_CHECK = (
    "from sqlalchemy import text\n"
    "from backend.db.session import engine\n"
    "with engine.connect() as c: c.execute(text('SELECT 1'))\n"
    "print(engine.dialect.name, 'DB OK')\n"
)


@pytest.fixture
def pg() -> Iterator[Scratch]:
    with scratch_database("pcm_switch") as (name, url):
        yield Scratch(name, url)


def started(server: Server) -> str:
    result = server.start()
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def toggle(c: httpx.Client, name: str, enabled: bool) -> dict[str, Any]:
    r = c.post("/api/feature-flags/toggle", json={"flag_name": name, "enabled": enabled})
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def flags(c: httpx.Client) -> dict[str, dict[str, Any]]:
    return {f["name"]: f for f in c.get("/api/feature-flags").json()["flags"]}


def runbook_check(server: Server) -> str:
    """The runbook's `python -c "from backend.db.session import engine; print('DB OK')"`, with
    a query so that it proves the connection."""
    done = server.run(sys.executable, "-c", RUNBOOK_CHECK)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def what_is_there(c: httpx.Client) -> dict[str, Any]:
    """What a user of the console sees of the data: users, tokens, providers, credentials,
    audit events and their chain, rollback records, flags."""
    return {
        "users": sorted(u["username"] for u in c.get("/api/users").json()["items"]),
        "tokens": sorted(t["name"] for t in c.get("/api/tokens").json()["items"]),
        "providers": [p["name"] for p in c.get("/api/providers").json()["items"]],
        "credentials": [x["access_key_id"] for x in c.get("/api/aws/credentials").json()["items"]],
        "audit_events": c.get("/api/feature-flags/audit").json()["total"],
        "rollback_records": c.get("/api/rollback-records").json()["total"],
        "flags": {n: f["enabled"] for n, f in flags(c).items() if n != FLAG},
    }


def test_switch__sqlite_data_to_postgresql_and_back__nothing_lost_old_file_a_backup(
    server_dirs: Server, pg: Scratch, emulator: Emulator
) -> None:
    server_dirs.env.update(PCM_POSTGRES_URL=pg.url, PCM_AWS_ENDPOINT_URL=emulator.url)
    # Given a server on SQLite with users, tokens, a provider with sealed credentials, audit
    # events and rollback records
    assert "Database backend: sqlite" in started(server_dirs)
    with server_dirs.client() as c:
        assert c.post(
            "/api/users",
            json={"username": "ana", "role": "operator", "password": "Ana-pw-1a2b3c4d"},
        ).is_success
        assert c.post("/api/tokens", json={"name": "ci", "role": "viewer"}).is_success
        r = c.post(
            "/api/providers",
            json={"name": "prod", "account_id": ACCOUNT, "default_region": "us-east-1"},
        )
        assert r.status_code == 201, r.text
        provider = r.json()["id"]
        put = c.put(f"/api/aws/credentials/{provider}", json=emulator.admin.body())
        assert put.status_code == 200, put.text
        toggle(c, CSRF, False)
        assert c.post(f"/api/feature-flags/{XSS}/rollback", json={"reason": "spike"}).is_success
        # When postgresql_support is enabled: it takes effect on restart
        assert toggle(c, FLAG, True)["flag"]["pending_restart"] is True
        before = what_is_there(c)
    server_dirs.stop()
    output = started(server_dirs)
    # Then the server runs on PostgreSQL with all of it, the chain verifying there
    assert "Database backend: postgresql (switched from sqlite, " in output
    with server_dirs.client() as c:
        health = c.get("/api/health").json()
        assert (health["status"], health["database"]["backend"]) == ("healthy", "postgresql")
        assert what_is_there(c) == before
        assert c.get("/api/feature-flags/audit/verify").json()["ok"] is True
        check = c.get(f"/api/auth/aws-check-credentials?provider_id={provider}").json()
        assert check["valid"] is True, check  # the sealed credentials still open
        assert flags(c)[FLAG]["pending_restart"] is False
        # When changes are made there and the flag is turned off
        assert c.post(
            "/api/users", json={"username": "bo", "role": "viewer", "password": "Bo-pw-9z8y7x6w"}
        ).is_success
        toggle(c, CSRF, True)
        assert toggle(c, FLAG, False)["flag"]["pending_restart"] is True
        after = what_is_there(c)
    assert runbook_check(server_dirs) == "postgresql DB OK"
    server_dirs.stop()
    output = started(server_dirs)
    # Then, restarted, the server is on SQLite with everything written on PostgreSQL
    assert "Database backend: sqlite (switched from postgresql, " in output
    with server_dirs.client() as c:
        health = c.get("/api/health").json()
        assert (health["status"], health["database"]["backend"]) == ("healthy", "sqlite")
        assert what_is_there(c) == after
        assert c.get("/api/feature-flags/audit/verify").json()["ok"] is True
        check = c.get(f"/api/auth/aws-check-credentials?provider_id={provider}").json()
        assert check["valid"] is True, check
    assert runbook_check(server_dirs) == "sqlite DB OK"
    # and the SQLite file it had before is a backup `db list` shows
    listed = server_dirs.run("./pcm-ops", "db", "list")
    assert listed.returncode == 0, listed.stderr
    assert "pcm_ops_tools_backup_" in listed.stdout


def rollback_via_api(server: Server) -> None:
    """The runbook's curl (with the admin token: only health is public)."""
    with server.client() as c:
        body = toggle(c, FLAG, False)
    assert body["journal_id"], body


def rollback_via_quick_rollback(server: Server) -> None:
    done = server.run("./quick-rollback.sh", FLAG)
    assert "ROLLBACK SUCCESSFUL" in done.stdout, done.stdout + done.stderr


def rollback_via_cli_server_stopped(server: Server) -> None:
    server.stop()
    done = server.run("./pcm-ops", "rollback", "flag", FLAG)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "journal" in done.stdout


@pytest.mark.parametrize(
    "rollback",
    [rollback_via_api, rollback_via_quick_rollback, rollback_via_cli_server_stopped],
    ids=["runbook-curl", "quick-rollback.sh", "cli-server-stopped"],
)
def test_switch__postgresql_refusing_connections__rollback_then_restart_on_sqlite_warns(
    server_dirs: Server, pg: Scratch, rollback: Any
) -> None:
    server_dirs.env["PCM_POSTGRES_URL"] = pg.url
    # Given a server switched to PostgreSQL, with a change written there only
    started(server_dirs)
    with server_dirs.client() as c:
        toggle(c, FLAG, True)
    server_dirs.stop()
    assert "Database backend: postgresql" in started(server_dirs)
    with server_dirs.client() as c:
        toggle(c, CSRF, False)
    # When PostgreSQL refuses connections and postgresql_support is rolled back
    pg.down()
    rollback(server_dirs)
    server_dirs.stop()
    output = started(server_dirs)
    # Then the next start is on SQLite, serving, and says what is missing and how to get it
    assert "Database backend: sqlite (switched from postgresql" in output
    assert "pcm-ops db sync --from postgresql" in output
    with httpx.Client(base_url=server_dirs.url, timeout=10) as anon:
        health = anon.get("/api/health")
    assert health.status_code == 200, health.text
    database = health.json()["database"]
    assert (database["backend"], database["primary"]) == ("sqlite", "sqlite")
    assert "pcm-ops db sync --from postgresql" in database["warning"]
    with server_dirs.client() as c:
        assert flags(c)[FLAG]["enabled"] is False
        assert c.get("/api/feature-flags/audit/verify").json()["ok"] is True
    assert runbook_check(server_dirs) == "sqlite DB OK"
    log = server_dirs.log_file.read_text()
    assert "Database backend: sqlite (switched from postgresql" in log


def test_switch__console_start_output__quiet_when_nothing_switches(server_dirs: Server) -> None:
    # Given no PCM_POSTGRES_URL: the server says plainly where it runs and why
    output = started(server_dirs)
    assert "Database backend: sqlite (no switch: PCM_POSTGRES_URL is not set)" in output
