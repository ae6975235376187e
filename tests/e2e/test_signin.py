"""Sign-in, sessions and the security flags against a real server started by ./start.sh."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from contextlib import closing

import httpx

from tests.e2e.conftest import Server

TOGGLE = "/api/feature-flags/toggle"


def admin_password(server: Server) -> str:
    return (server.data_dir / "admin_password").read_text().strip()


def sign_in(server: Server) -> tuple[httpx.Client, str]:
    browser = httpx.Client(base_url=server.url, timeout=15)
    r = browser.post(
        "/api/auth/login", json={"username": "admin", "password": admin_password(server)}
    )
    assert r.status_code == 200, r.text
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie
    return browser, r.json()["csrf_token"]


def set_flag(server: Server, name: str, enabled: bool) -> dict[str, object]:
    with server.client() as admin:
        r = admin.post(TOGGLE, json={"flag_name": name, "enabled": enabled})
    assert r.status_code == 200, r.text
    flag: dict[str, object] = r.json()["flag"]
    return flag


def test_first_start_says_how_to_sign_in_and_the_admin_can(server_dirs: Server) -> None:
    started = server_dirs.start()
    assert started.returncode == 0, started.stdout + started.stderr
    assert "admin_password" in started.stdout and "/login" in started.stdout
    again = server_dirs.run(".venv/bin/python", "backend/db/init_db.py")
    assert "admin_password" not in again.stdout  # said once
    browser, csrf = sign_in(server_dirs)
    with closing(browser):
        assert browser.get("/api/auth/me").json()["name"] == "user:admin"
        body = {"flag_name": "postgresql_support", "enabled": False}
        refused = browser.post(TOGGLE, json=body)
        assert refused.status_code == 403
        assert refused.headers["content-type"] == "application/problem+json"
        request_id = refused.headers["x-request-id"]
        assert refused.json()["request_id"] == request_id
        assert f"request {request_id} POST {TOGGLE} -> 403" in server_dirs.log_file.read_text()
        assert browser.post(TOGGLE, json=body, headers={"X-CSRF-Token": csrf}).status_code == 200
        # The page renders with a nonce'd CSP; the form login works the same way.
        page = browser.get("/whoami")
        assert "nonce-" in page.headers["content-security-policy"]
        assert browser.post("/api/auth/logout", headers={"X-CSRF-Token": csrf}).status_code == 200
        assert browser.get("/api/auth/me").status_code == 401
    # The runbook's token calls still work.
    with server_dirs.client() as admin:
        assert admin.get("/api/feature-flags").status_code == 200
        assert admin.post("/api/feature-flags/emergency-rollback").status_code == 200


def test_fifty_concurrent_session_updates(server: Server) -> None:
    browser, csrf = sign_in(server)

    def burst(prefix: str) -> None:
        def put(i: int) -> int:
            r = browser.post(
                "/api/auth/preferences",
                json={"key": f"{prefix}{i}", "value": i},
                headers={"X-CSRF-Token": csrf},
            )
            return r.status_code

        with ThreadPoolExecutor(max_workers=50) as pool:
            assert set(pool.map(put, range(50))) == {200}

    with closing(browser):
        burst("safe")  # both flags on (their default): none lost
        prefs = browser.get("/api/auth/preferences").json()
        assert sorted(prefs) == sorted(f"safe{i}" for i in range(50))

        set_flag(server, "thread_safe_sessions", False)
        set_flag(server, "atomic_session_updates", False)
        burst("legacy")
        prefs = browser.get("/api/auth/preferences").json()
        legacy = [k for k in prefs if k.startswith("legacy")]
        # Off, concurrent read-modify-writes may overwrite each other: fewer than 50 can
        # survive (how many depends on timing; the store-level test pins it to exactly 1).
        # What must hold: every request answered, the session is still valid and readable.
        assert 1 <= len(legacy) <= 50
        assert browser.get("/api/auth/me").status_code == 200


def test_security_flags_switch_at_runtime(server: Server) -> None:
    browser, _ = sign_in(server)
    with closing(browser):
        assert "content-security-policy" in browser.get("/whoami").headers
        set_flag(server, "xss_protection_enabled", False)
        r = browser.get("/whoami")
        assert "content-security-policy" not in r.headers
        assert r.headers["x-xss-protection"] == "1; mode=block"

        set_flag(server, "new_secret_key_handling", False)
        assert browser.get("/api/auth/me").status_code == 200  # still signed in
        set_flag(server, "new_secret_key_handling", True)
        assert browser.get("/api/auth/me").status_code == 200

        set_flag(server, "csrf_tokens_enabled", False)
        body = {"flag_name": "postgresql_support", "enabled": False}
        assert browser.post(TOGGLE, json=body).status_code == 200
        set_flag(server, "enhanced_error_handling", False)
        r = browser.get("/api/feature-flags/nope")
        assert r.headers["content-type"] == "application/json" and set(r.json()) == {"detail"}


def test_strict_schemas_change_on_restart(server: Server) -> None:
    coerced = {"flag_name": "postgresql_support", "enabled": "false"}
    with server.client() as admin:
        assert admin.post(TOGGLE, json=coerced).status_code == 422
    flag = set_flag(server, "pydantic_v2_schemas", False)
    assert flag["pending_restart"] is True
    assert server.stop().returncode == 0
    assert server.start().returncode == 0
    with server.client() as admin:
        r = admin.get("/api/feature-flags/pydantic_v2_schemas")
        assert r.json()["pending_restart"] is False
        assert admin.post(TOGGLE, json=coerced).status_code == 200


def test_a_weak_secret_key_stops_start_up(server_dirs: Server) -> None:
    result = server_dirs.start(extra_env={"SECRET_KEY": "changeme"})
    assert result.returncode != 0
    assert "SECRET_KEY is a well-known default key" in result.stdout + result.stderr
