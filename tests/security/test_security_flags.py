"""The security flags, each switched at runtime (or restarted) and tested both ways."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient
from itsdangerous import Signer
from sqlalchemy.orm import Session, sessionmaker

from backend.aws.models import Provider
from backend.core.config import Settings
from backend.main import create_app
from backend.security.errors import WeakSecretKey

from .conftest import Login, MakeUser, SetFlag

TOGGLE = "/api/feature-flags/toggle"
SAFE_BODY = {"flag_name": "thread_safe_sessions", "enabled": True}
GOOD_KEY = "k3Y-5x9QwErTyUiOpAsDfGhJkLzXcVbNm0123456789"
OTHER_KEY = "Zz9-Yy8Xx7Ww6Vv5Uu4Tt3Ss2Rr1Qq0PpOoNnMmLlKk"
LEGACY_KEY = Settings.model_fields["legacy_secret_key"].default


@pytest.fixture
def operator(client: TestClient, make_user: MakeUser, login: Login) -> tuple[TestClient, str]:
    """A second browser signed in as an operator, and its CSRF token."""
    make_user("olga", "operator")
    browser = TestClient(client.app)
    return browser, login(browser, "olga")


# -- csrf_tokens_enabled -------------------------------------------------------------------------
def test_csrf_on_refuses_session_requests_without_the_token(
    operator: tuple[TestClient, str], admin_headers: dict[str, str], client: TestClient
) -> None:
    browser, token = operator
    r = browser.post(TOGGLE, json=SAFE_BODY)
    assert r.status_code == 403 and "CSRF token missing" in r.json()["detail"]
    r = browser.post(TOGGLE, json=SAFE_BODY, headers={"X-CSRF-Token": "forged" + token})
    assert r.status_code == 403 and "CSRF token invalid" in r.json()["detail"]
    assert browser.post(TOGGLE, json=SAFE_BODY, headers={"X-CSRF-Token": token}).status_code == 200
    # Reads need none; bearer-token requests are exempt.
    assert browser.get("/api/feature-flags").status_code == 200
    assert client.post(TOGGLE, json=SAFE_BODY, headers=admin_headers).status_code == 200


def test_csrf_token_is_bound_to_its_session(
    operator: tuple[TestClient, str], client: TestClient, make_user: MakeUser, login: Login
) -> None:
    browser, _ = operator
    make_user("otto", "operator")
    other = TestClient(client.app)
    others_token = login(other, "otto")
    r = browser.post(TOGGLE, json=SAFE_BODY, headers={"X-CSRF-Token": others_token})
    assert r.status_code == 403


def test_csrf_token_in_a_form_field(operator: tuple[TestClient, str]) -> None:
    browser, token = operator
    assert browser.post("/logout", data={}, follow_redirects=False).status_code == 403
    r = browser.post("/logout", data={"csrf_token": token}, follow_redirects=False)
    assert r.status_code == 303


def test_csrf_off_checks_nothing(operator: tuple[TestClient, str], set_flag: SetFlag) -> None:
    browser, _ = operator
    set_flag("csrf_tokens_enabled", False)
    assert browser.post(TOGGLE, json=SAFE_BODY).status_code == 200
    set_flag("csrf_tokens_enabled", True)
    assert browser.post(TOGGLE, json=SAFE_BODY).status_code == 403


# -- xss_protection_enabled ----------------------------------------------------------------------
XSS = "<script>alert(document.cookie)</script>"


@pytest.fixture
def evil_provider(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as s:
        s.add(
            Provider(
                name=XSS,
                account_id="123456789012",
                default_region="eu-west-1",
                description='"><img src=x onerror=alert(1)>',
            )
        )


def nonce_of(policy: str) -> str:
    match = re.search(r"script-src 'nonce-([^']+)'", policy)
    assert match, policy
    return match.group(1)


@pytest.mark.usefixtures("evil_provider")
def test_xss_on_a_stored_script_never_runs(
    operator: tuple[TestClient, str],
) -> None:
    browser, _ = operator
    r = browser.get("/whoami")
    assert r.status_code == 200
    policy = r.headers["content-security-policy"]
    assert "'unsafe-inline'" not in policy and "object-src 'none'" in policy
    assert "frame-ancestors 'none'" in policy
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["x-frame-options"] == "DENY"
    assert r.headers["referrer-policy"] == "strict-origin-when-cross-origin"
    # The provider's name is text, not markup; the only script is our external file, and it
    # carries this response's nonce (the next response has another).
    assert XSS not in r.text and "&lt;script&gt;alert(document.cookie)&lt;/script&gt;" in r.text
    assert "<img" not in r.text and "&#34;&gt;&lt;img src=x onerror=alert(1)&gt;" in r.text
    nonce = nonce_of(policy)
    scripts = re.findall(r"<script[^>]*>", r.text, flags=re.IGNORECASE)
    assert scripts == [f'<script src="/static/app.js" nonce="{nonce}" defer>']
    assert nonce_of(browser.get("/whoami").headers["content-security-policy"]) != nonce


@pytest.mark.usefixtures("evil_provider")
def test_xss_off_sends_the_legacy_headers(
    operator: tuple[TestClient, str], set_flag: SetFlag, client: TestClient
) -> None:
    browser, _ = operator
    set_flag("xss_protection_enabled", False)
    r = browser.get("/whoami")
    assert r.headers["x-xss-protection"] == "1; mode=block"
    for header in ("content-security-policy", "x-content-type-options", "x-frame-options"):
        assert header not in r.headers
    # Escaping is not part of the rollback: templates autoescape whatever the flag says.
    assert XSS not in r.text
    assert "x-xss-protection" in client.get("/api/health").headers
    set_flag("xss_protection_enabled", True)
    assert "content-security-policy" in browser.get("/whoami").headers


def test_headers_are_on_json_and_error_responses_too(client: TestClient) -> None:
    for r in (client.get("/api/health"), client.get("/api/feature-flags"), client.get("/nope")):
        assert r.headers["x-content-type-options"] == "nosniff"
        assert "content-security-policy" in r.headers


# -- new_secret_key_handling ----------------------------------------------------------------------
def test_a_weak_secret_key_stops_start_up(make_settings: Callable[..., Settings]) -> None:
    with pytest.raises(WeakSecretKey, match="SECRET_KEY is a well-known default key"):
        create_app(make_settings(secret_key="changeme"))
    with pytest.raises(WeakSecretKey, match="too short"):
        create_app(make_settings(secret_key="abc123"))


def test_switching_the_key_flag_keeps_everyone_signed_in(
    operator: tuple[TestClient, str], set_flag: SetFlag
) -> None:
    browser, _ = operator
    signed_new = browser.cookies["pcm_session"]
    set_flag("new_secret_key_handling", False)
    r = browser.get("/api/auth/me")
    assert r.status_code == 200
    # Re-signed with the legacy key on the way out; the id is the same session.
    signed_legacy = browser.cookies["pcm_session"]
    assert signed_legacy != signed_new
    assert signed_legacy.split(".")[0] == signed_new.split(".")[0]
    set_flag("new_secret_key_handling", True)
    assert browser.get("/api/auth/me").status_code == 200
    assert browser.cookies["pcm_session"] == signed_new


def legacy_cookie_for(browser: TestClient) -> str:
    """The browser's session id signed with the well-known legacy key, as anyone can."""
    session_id = browser.cookies["pcm_session"].rsplit(".", 1)[0]
    return Signer(LEGACY_KEY, salt="pcm-ops-session").sign(session_id).decode()


def test_new_key_handling_on__cookie_forged_with_the_legacy_key__refused(
    operator: tuple[TestClient, str], client: TestClient
) -> None:
    # Given a session made while new_secret_key_handling is on
    browser, _ = operator
    forged = legacy_cookie_for(browser)
    # When its id comes signed with the well-known legacy key
    r = TestClient(client.app).get("/api/auth/me", headers={"Cookie": f"pcm_session={forged}"})
    # Then it is nobody
    assert r.status_code == 401
    assert browser.get("/api/auth/me").status_code == 200  # the real cookie still works


def test_new_key_handling_switched_on__user_signed_in_before__stays_signed_in(
    client: TestClient, make_user: MakeUser, login: Login, set_flag: SetFlag
) -> None:
    # Given a user who signed in while the flag was off (a legacy-signed cookie)
    set_flag("new_secret_key_handling", False)
    make_user("olga", "operator")
    browser = TestClient(client.app)
    login(browser, "olga")
    legacy = browser.cookies["pcm_session"]
    assert legacy == legacy_cookie_for(browser)
    # When the flag is switched on
    set_flag("new_secret_key_handling", True)
    # Then their next request works, and moves them to the new key
    r = browser.get("/api/auth/me")
    assert r.status_code == 200 and r.json()["name"] == "user:olga"
    assert browser.cookies["pcm_session"] != legacy
    assert browser.get("/api/auth/me").status_code == 200
    # And once the new cookie has come back, the legacy one is refused
    stale = TestClient(client.app).get("/api/auth/me", headers={"Cookie": f"pcm_session={legacy}"})
    assert stale.status_code == 401


def test_the_key_file_is_used_without_secret_key(settings: Settings, client: TestClient) -> None:
    import stat

    assert stat.S_IMODE(settings.secret_key_file.stat().st_mode) == 0o600


def test_rotation_with_fallbacks_keeps_sessions(
    open_client: Callable[..., TestClient], make_user: MakeUser, login: Login
) -> None:
    make_user("ann", "viewer")
    before = open_client(secret_key=OTHER_KEY)
    login(before, "ann")
    cookie = before.cookies["pcm_session"]
    sent = {"Cookie": f"pcm_session={cookie}"}
    rotated = open_client(secret_key=GOOD_KEY, secret_key_fallbacks=OTHER_KEY)
    r = rotated.get("/api/auth/me", headers=sent)
    assert r.status_code == 200
    assert r.headers["set-cookie"].split(";")[0] != f"pcm_session={cookie}"  # moved to the new key
    dropped = open_client(secret_key=GOOD_KEY)
    assert dropped.get("/api/auth/me", headers=sent).status_code == 401


# -- enhanced_error_handling ---------------------------------------------------------------------
@pytest.fixture
def boom(client: TestClient) -> TestClient:
    def explode() -> None:
        raise RuntimeError("secret internal state: password=hunter2")

    client.app.add_api_route("/api/test-boom", explode)  # type: ignore[attr-defined]
    return client


def test_errors_are_problem_details_with_a_request_id(
    boom: TestClient, admin_headers: dict[str, str], settings: Settings
) -> None:
    cases = {
        404: boom.get("/api/feature-flags/nope", headers=admin_headers),
        401: boom.get("/api/feature-flags"),
        405: boom.delete("/api/health"),
        500: boom.get("/api/test-boom"),
    }
    for status, r in cases.items():
        assert r.status_code == status
        assert r.headers["content-type"] == "application/problem+json"
        body = r.json()
        assert body["status"] == status and body["title"] and body["detail"]
        assert body["request_id"] == r.headers["x-request-id"]
        assert "Traceback" not in r.text and "hunter2" not in r.text
    log = settings.log_file.read_text()
    assert f"request {cases[500].headers['x-request-id']} GET /api/test-boom" in log
    assert "hunter2" in log  # the detail is in the log, for the operator, not in the answer
    assert (
        cases[404].json()["detail"] == "feature flag 'nope' does not exist"
        or "nope" in cases[404].json()["detail"]
    )


def test_validation_errors_name_each_field(
    client: TestClient, admin_headers: dict[str, str]
) -> None:
    r = client.post(TOGGLE, json={"flag_name": "", "enabled": "maybe"}, headers=admin_headers)
    assert r.status_code == 422
    body = r.json()
    fields = {e["field"]: e["message"] for e in body["errors"]}
    assert set(fields) == {"flag_name", "enabled"}
    assert "maybe" not in r.text  # the input is not echoed


def test_an_incoming_request_id_is_kept(client: TestClient) -> None:
    r = client.get("/nope", headers={"X-Request-ID": "trace-abc-12345"})
    assert r.headers["x-request-id"] == "trace-abc-12345" == r.json()["request_id"]
    r = client.get("/nope", headers={"X-Request-ID": "bad id\nInjected: yes"})
    assert r.headers["x-request-id"] != "bad id\nInjected: yes"


def test_errors_off_are_the_framework_defaults(
    boom: TestClient, admin_headers: dict[str, str], set_flag: SetFlag
) -> None:
    set_flag("enhanced_error_handling", False)
    r = boom.get("/api/feature-flags/nope", headers=admin_headers)
    assert r.status_code == 404 and r.headers["content-type"] == "application/json"
    assert set(r.json()) == {"detail"}
    r = boom.get("/nope")
    assert r.json() == {"detail": "Not Found"}
    r = boom.post(TOGGLE, json={"flag_name": "x", "enabled": "maybe"}, headers=admin_headers)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "enabled"]
    r = boom.get("/api/test-boom")
    assert r.status_code == 500 and r.json() == {"detail": "internal error; see the server log"}
    set_flag("enhanced_error_handling", True)
    assert boom.get("/nope").headers["content-type"] == "application/problem+json"


# -- pydantic_v2_schemas (restart) ----------------------------------------------------------------
def test_strict_schemas_until_a_restart_makes_them_lenient(
    open_client: Callable[..., TestClient], admin_headers: dict[str, str]
) -> None:
    first = open_client()
    coerced = {"flag_name": "thread_safe_sessions", "enabled": "true"}
    extra = {"flag_name": "thread_safe_sessions", "enabled": True, "unknown": 1}
    assert first.post(TOGGLE, json=coerced, headers=admin_headers).status_code == 422
    r = first.post(TOGGLE, json=extra, headers=admin_headers)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "unknown"
    off = {"flag_name": "pydantic_v2_schemas", "enabled": False}
    flag = first.post(TOGGLE, json=off, headers=admin_headers).json()["flag"]
    assert flag["pending_restart"] is True
    # Still strict in this process: the flag takes effect on restart.
    assert first.post(TOGGLE, json=coerced, headers=admin_headers).status_code == 422

    restarted = open_client()
    r = restarted.get("/api/feature-flags/pydantic_v2_schemas", headers=admin_headers)
    assert (r.json()["enabled"], r.json()["pending_restart"]) == (False, False)
    assert restarted.post(TOGGLE, json=coerced, headers=admin_headers).status_code == 200
    assert restarted.post(TOGGLE, json=extra, headers=admin_headers).status_code == 200
    assert (
        restarted.post(
            TOGGLE,
            json={"flag_name": "thread_safe_sessions", "enabled": "maybe"},
            headers=admin_headers,
        ).status_code
        == 422
    )  # lenient, not lawless
