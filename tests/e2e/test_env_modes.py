"""Environment-variable rollback mode and per-flag overrides, through ./start.sh."""

from __future__ import annotations

from tests.e2e.conftest import Server


def test_rollback_mode_serves_rollback_values_and_refuses_enabling(server_dirs: Server) -> None:
    started = server_dirs.start({"FEATURE_FLAG_ROLLBACK_MODE_ENABLED": "true"})
    assert started.returncode == 0, started.stdout + started.stderr
    assert "ROLLBACK MODE" in started.stdout
    with server_dirs.client() as c:
        health = c.get("/api/health").json()
        assert health["rollback_mode"] is True
        listing = c.get("/api/feature-flags").json()
        assert listing["rollback_mode"] is True
        xss = next(f for f in listing["flags"] if f["name"] == "xss_protection_enabled")
        assert xss["enabled"] is False and xss["stored_enabled"] is True
        assert xss["source"] == "rollback_mode"
        refused = c.post(
            "/api/feature-flags/toggle",
            json={"flag_name": "xss_protection_enabled", "enabled": True},
        )
        assert refused.status_code == 409
        assert "rollback mode" in refused.json()["detail"]
    server_dirs.stop()
    # Stored state untouched: without the variable the flag serves its stored value again.
    assert server_dirs.start().returncode == 0
    with server_dirs.client() as c:
        assert c.get("/api/feature-flags/xss_protection_enabled").json()["enabled"] is True


def test_per_flag_override(server_dirs: Server) -> None:
    assert server_dirs.start({"FEATURE_FLAG_CSRF_TOKENS_ENABLED": "false"}).returncode == 0
    with server_dirs.client() as c:
        flag = c.get("/api/feature-flags/csrf_tokens_enabled").json()
        assert flag == {**flag, "enabled": False, "stored_enabled": True, "source": "env"}


def test_invalid_values_stop_start_up(server_dirs: Server) -> None:
    bad = server_dirs.start({"FEATURE_FLAG_ROLLBACK_MODE_ENABLED": "maybe"})
    assert bad.returncode != 0
    assert "FEATURE_FLAG_ROLLBACK_MODE_ENABLED='maybe' is not a boolean" in bad.stderr
    unknown = server_dirs.start({"FEATURE_FLAG_NOT_A_FLAG": "true"})
    assert unknown.returncode != 0
    assert "FEATURE_FLAG_NOT_A_FLAG names no feature flag" in unknown.stderr
    assert not (server_dirs.data_dir / "pcm_ops_tools.pid").exists()
