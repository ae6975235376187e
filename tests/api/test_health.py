"""The two public health endpoints, healthy and not."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from fastapi.testclient import TestClient

from backend.flags import DEFAULT_FLAGS, FlagRuntime, snapshot


def test_app_health_is_public_and_complete(client: TestClient, backend: str) -> None:
    r = client.get("/api/health")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "healthy"
    assert body["version"] == "0.1.0"
    assert body["uptime_seconds"] >= 0
    assert body["database"]["ok"] is True
    assert body["database"]["backend"] == backend
    assert body["database"]["error"] is None
    assert body["flags"]["status"] == "healthy"
    assert body["flags_version"] == body["flags"]["version"] >= 1
    assert body["rollback_mode"] is False
    assert (body["summary"], body["migrations_pending"]) == ("healthy", False)


def test_flag_health_is_public_and_complete(client: TestClient) -> None:
    r = client.get("/api/feature-flags/health")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "healthy"
    assert body["store_reachable"] is True
    assert body["flags"] == len(DEFAULT_FLAGS)
    assert body["stale"] is False
    assert body["from_last_known_state"] is False
    assert body["rollback_mode"] is False
    assert body["pending_restart"] == []
    assert body["error"] is None
    assert (body["summary"], body["migrations_pending"]) == ("healthy", False)
    assert 0 <= body["seconds_since_sync"] < 5


def test_health_reports_rollback_mode(open_client: Callable[..., TestClient]) -> None:
    client = open_client(rollback_mode=True)
    app_health = client.get("/api/health").json()
    assert app_health["rollback_mode"] is True
    assert app_health["flags"]["rollback_mode"] is True
    assert client.get("/api/feature-flags/health").json()["rollback_mode"] is True


def test_a_database_outage_is_unhealthy_and_served_from_last_known_state(
    runtime: FlagRuntime,
    open_client: Callable[..., TestClient],
    admin_headers: dict[str, str],
    tmp_path: Path,
) -> None:
    runtime.toggle("csrf_tokens_enabled", False, actor="a", method="api")  # writes the state file
    version = snapshot.current().version
    snapshot.reset()  # a fresh process
    client = open_client(database_url=f"sqlite:///{tmp_path}/gone/pcm.db")

    r = client.get("/api/health")
    assert r.status_code == 503
    assert r.json()["status"] == "unhealthy"
    assert r.json()["database"]["ok"] is False
    assert "unable to open database file" in r.json()["database"]["error"]

    r = client.get("/api/feature-flags/health")
    assert r.status_code == 503
    flags = r.json()
    assert (flags["store_reachable"], flags["from_last_known_state"]) == (False, True)
    assert flags["version"] == version
    assert int(r.headers["X-Flags-Version"]) == version
    assert snapshot.current().flags["csrf_tokens_enabled"].enabled is False

    # The local admin token still authenticates (degraded) and reads flags from the snapshot;
    # calls that need the database get an honest 503, not a 500.
    r = client.get("/api/feature-flags", headers=admin_headers)
    assert r.status_code == 200
    assert r.json()["from_last_known_state"] is True
    r = client.get("/api/feature-flags/audit", headers=admin_headers)
    assert r.status_code == 503
    assert "database is unavailable" in r.json()["detail"]
