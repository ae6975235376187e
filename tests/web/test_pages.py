"""The console's pages in-process: access, content, forms with CSRF, CSV export, records."""

from __future__ import annotations

import csv
import io
import re

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from backend.security.users import create_user

PASSWORD = "correct horse battery staple"


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]*)"', html)
    assert match, "page has no CSRF field"
    return match.group(1)


def sign_in(client: TestClient, username: str) -> None:
    r = client.post(
        "/login", data={"username": username, "password": PASSWORD}, follow_redirects=False
    )
    assert r.status_code == 303, r.text


@pytest.fixture
def users(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as s:
        create_user(s, username="olga", password=PASSWORD, role="operator")
        create_user(s, username="vic", password=PASSWORD, role="viewer")


def test_pages_send_anonymous_callers_to_sign_in(client: TestClient) -> None:
    for path in ("/", "/flags", "/history", "/timeline", "/records/1", "/rollback/emergency"):
        r = client.get(path, follow_redirects=False)
        assert r.status_code == 303, path
        assert r.headers["location"].startswith("/login?next=")


def test_dashboard_shows_health_flags_and_changes(
    client: TestClient, users: None, admin_headers: dict[str, str]
) -> None:
    client.post(
        "/api/feature-flags/toggle",
        headers=admin_headers,
        json={"flag_name": "pydantic_v2_schemas", "enabled": False, "reason": "why not"},
    )
    sign_in(client, "vic")
    html = client.get("/").text
    assert "Database" in html and "reachable" in html
    assert "Restart needed" in html and "pydantic_v2_schemas" in html
    assert "why not" in html  # the last changes list
    assert "<svg" in html
    assert "ROLLBACK MODE" not in html


def test_operator_toggles_from_the_flags_page(client: TestClient, users: None) -> None:
    sign_in(client, "olga")
    page = client.get("/flags").text
    token = csrf_of(page)
    refused = client.post(
        "/flags/csrf_tokens_enabled/toggle", data={"enabled": "false", "reason": "no token"}
    )
    assert refused.status_code == 403
    r = client.post(
        "/flags/csrf_tokens_enabled/toggle",
        follow_redirects=False,
        data={"enabled": "false", "reason": "forms failing", "csrf_token": token},
    )
    assert r.status_code == 303
    assert "is now off" in client.get(r.headers["location"]).text
    history = client.get("/history?flag=csrf_tokens_enabled").text
    assert "forms failing" in history and "user:olga" in history
    unknown = client.post("/flags/nope/toggle", data={"enabled": "true", "csrf_token": token})
    assert unknown.status_code == 404 and "unknown feature flag" in unknown.text


def test_viewer_cannot_change_flags(client: TestClient, users: None) -> None:
    sign_in(client, "vic")
    page = client.get("/flags").text
    assert "/toggle" not in page
    token = csrf_of(page)  # the sign-out form still carries one
    r = client.post(
        "/flags/xss_protection_enabled/toggle", data={"enabled": "false", "csrf_token": token}
    )
    assert r.status_code == 403


def test_emergency_rollback_needs_confirmation_and_reason(client: TestClient, users: None) -> None:
    sign_in(client, "olga")
    confirm = client.get("/rollback/emergency").text
    assert "xss_protection_enabled" in confirm
    token = csrf_of(confirm)
    missing = client.post("/rollback/emergency", data={"reason": "x", "csrf_token": token})
    assert missing.status_code == 400 and "confirmation" in missing.text
    done = client.post(
        "/rollback/emergency", data={"reason": "error spike", "confirm": "yes", "csrf_token": token}
    )
    assert done.status_code == 200
    assert "success" in done.text and "xss_protection_enabled" in done.text
    record_id = re.search(r'href="/records/(\d+)"', done.text).group(1)  # type: ignore[union-attr]
    record = client.get(f"/records/{record_id}").text
    assert "SUBJECT: [URGENT] PCM-Ops Tools Rollback - ALL" in record
    assert "ISSUE: error spike" in record and "Verification: success" in record
    assert "requests served in the 10 minutes before the rollback" in record


def test_history_filters_and_csv_export(
    client: TestClient, users: None, admin_headers: dict[str, str]
) -> None:
    for name in ("xss_protection_enabled", "thread_safe_sessions"):
        client.post(
            "/api/feature-flags/toggle",
            headers=admin_headers,
            json={"flag_name": name, "enabled": False, "reason": f"r-{name}"},
        )
    sign_in(client, "vic")
    filtered = client.get("/history?flag=thread_safe_sessions").text
    assert "r-thread_safe_sessions" in filtered and "r-xss_protection_enabled" not in filtered
    export = client.get("/history.csv?flag=thread_safe_sessions")
    assert export.headers["content-type"].startswith("text/csv")
    assert "attachment" in export.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(export.text)))
    assert [r["flag"] for r in rows] == ["thread_safe_sessions"]
    assert rows[0]["actor"] == "token:admin" and rows[0]["reason"] == "r-thread_safe_sessions"
    bad = client.get("/history?since=yesterday")
    assert bad.status_code == 422


def test_user_text_is_escaped(
    client: TestClient, users: None, admin_headers: dict[str, str]
) -> None:
    client.post(
        "/api/feature-flags/toggle",
        headers=admin_headers,
        json={
            "flag_name": "xss_protection_enabled",
            "enabled": False,
            "reason": "<script>alert(1)</script>",
        },
    )
    sign_in(client, "vic")
    for path in ("/", "/history"):
        html = client.get(path).text
        assert "<script>alert(1)</script>" not in html
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_pages_carry_a_strict_csp_with_a_nonce(client: TestClient, users: None) -> None:
    sign_in(client, "vic")
    r = client.get("/flags")
    policy = r.headers["content-security-policy"]
    nonce = re.search(r"'nonce-([^']+)'", policy).group(1)  # type: ignore[union-attr]
    assert f'nonce="{nonce}"' in r.text
    assert "unsafe-inline" not in policy
    assert "<script>" not in r.text and " onclick=" not in r.text and "style=" not in r.text


def test_browsers_get_an_html_error_page_and_api_clients_json(
    client: TestClient, users: None
) -> None:
    sign_in(client, "vic")
    html = {"Accept": "text/html,application/xhtml+xml"}
    token = csrf_of(client.get("/flags").text)
    forbidden = client.post(
        "/flags/xss_protection_enabled/toggle",
        headers=html,
        data={"enabled": "false", "csrf_token": token},
    )
    assert forbidden.status_code == 403
    assert forbidden.headers["content-type"].startswith("text/html")
    assert "403 Forbidden" in forbidden.text and "operator role" in forbidden.text
    no_csrf = client.post("/logout", headers=html)
    assert no_csrf.status_code == 403 and "reload the page" in no_csrf.text
    missing = client.get("/records/999999", headers=html)
    assert missing.status_code == 404 and "no rollback record 999999" in missing.text
    api = client.get("/api/rollback-records/999999", headers=html)
    assert api.status_code == 404 and not api.headers["content-type"].startswith("text/html")
