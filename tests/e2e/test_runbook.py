"""The runbook's commands, run as written (plus the auth header) against a real server."""

from __future__ import annotations

import re

from tests.e2e.conftest import Server

RUNBOOK_FLAGS = [
    "new_secret_key_handling",
    "xss_protection_enabled",
    "csrf_tokens_enabled",
    "secure_credential_storage",
    "thread_safe_sessions",
    "atomic_session_updates",
    "enhanced_error_handling",
    "pydantic_v2_schemas",
    "postgresql_support",
]


def test_start_is_idempotent_and_stop_is_graceful(server: Server) -> None:
    again = server.start()
    assert again.returncode == 0
    assert "already running" in again.stdout
    pid_file = server.data_dir / "pcm_ops_tools.pid"
    assert pid_file.exists()
    stopped = server.stop()
    assert stopped.returncode == 0
    assert "stopped gracefully" in stopped.stdout
    assert not pid_file.exists()
    twice = server.stop()
    assert twice.returncode == 0
    assert "not running" in twice.stdout


def test_start_prints_url_log_and_token(server_dirs: Server) -> None:
    result = server_dirs.start()
    assert result.returncode == 0, result.stderr
    assert server_dirs.url in result.stdout
    assert str(server_dirs.log_file) in result.stdout
    token_file = server_dirs.data_dir / "admin_token"
    assert str(token_file) in result.stdout
    assert token_file.stat().st_mode & 0o777 == 0o600


def test_runbook_endpoints_with_and_without_auth(server: Server) -> None:
    with server.client() as c:
        for path in (
            "/api/health",
            "/api/feature-flags/health",
            "/api/feature-flags",
            "/api/providers",
            "/api/auth/aws-check-credentials",
            "/aws/tools",
            "/api/feature-flags/xss_protection_enabled",
        ):
            response = c.get(path)
            assert response.status_code == 200, (path, response.text)
            assert response.headers["x-flags-version"].isdigit()
        names = [f["name"] for f in c.get("/api/feature-flags").json()["flags"]]
        assert sorted(names) == sorted(RUNBOOK_FLAGS)
        creds = c.get("/api/auth/aws-check-credentials").json()
        assert creds["valid"] is False and creds["configured"] is False
        assert "no provider is defined yet" in creds["error"]
    with server.client() as anon:
        anon.headers.pop("Authorization")
        assert anon.get("/api/health").status_code == 200
        assert anon.get("/api/feature-flags/health").status_code == 200
        for method, path in (
            ("GET", "/api/feature-flags"),
            ("GET", "/api/providers"),
            ("GET", "/aws/tools"),
            ("POST", "/api/feature-flags/toggle"),
            ("POST", "/api/feature-flags/emergency-rollback"),
        ):
            assert anon.request(method, path).status_code == 401, path


def test_toggle_as_runbook_then_log_lines(server: Server) -> None:
    with server.client() as c:
        before = int(c.get("/api/health").headers["x-flags-version"])
        r = c.post(
            "/api/feature-flags/toggle", json={"flag_name": "csrf_tokens_enabled", "enabled": False}
        )
        assert r.status_code == 200, r.text
        assert r.json()["flag"]["enabled"] is False
        after = int(r.headers["x-flags-version"])
        assert after > before
        assert c.get("/api/feature-flags/csrf_tokens_enabled").json()["enabled"] is False
        bad = c.post("/api/feature-flags/toggle", json={"flag_name": "nope", "enabled": False})
        assert bad.status_code == 404 and "nope" in bad.json()["detail"]
    log = server.log_file.read_text()
    assert re.search(
        r"Feature flag csrf_tokens_enabled changed: enabled -> disabled by "
        r"token:admin via api",
        log,
    )


def test_emergency_rollback_as_runbook(server: Server) -> None:
    with server.client() as c:
        r = c.post("/api/feature-flags/emergency-rollback")
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["verification"] == "success"
        assert "pydantic_v2_schemas" in body["requires_restart"]
        flags = c.get("/api/feature-flags").json()["flags"]
        assert all(f["enabled"] is False for f in flags)
        record = c.get(f"/api/rollback-records/{body['record_id']}").json()
        assert record["method"] == "emergency" and record["feature"] == "ALL"
        assert "ROLLBACK INITIATED" in record["log_entry"]


def test_quick_rollback_script(server: Server) -> None:
    usage = server.run("./quick-rollback.sh")
    assert usage.returncode == 1 and "Usage: ./quick-rollback.sh" in usage.stdout
    ok = server.run("./quick-rollback.sh", "thread_safe_sessions")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "ROLLBACK SUCCESSFUL" in ok.stdout and "health check passed" in ok.stdout
    with server.client() as c:
        assert c.get("/api/feature-flags/thread_safe_sessions").json()["enabled"] is False
    unknown = server.run("./quick-rollback.sh", "no_such_flag")
    assert unknown.returncode != 0
    assert "unknown feature flag" in unknown.stderr


def test_quick_rollback_works_with_server_down(server: Server) -> None:
    server.stop()
    result = server.run("./quick-rollback.sh", "enhanced_error_handling")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "directly" in result.stderr
    assert server.start().returncode == 0
    with server.client() as c:
        flag = c.get("/api/feature-flags/enhanced_error_handling").json()
        assert flag["enabled"] is False
        assert flag["updated_by"].startswith("cli")


def test_critical_path_script(server: Server) -> None:
    ok = server.run("./tests/critical_path_test.sh")
    assert ok.returncode == 0, ok.stdout
    assert "critical paths passed" in ok.stdout
    server.stop()
    down = server.run("./tests/critical_path_test.sh")
    assert down.returncode == 1
    assert "❌" in down.stdout
