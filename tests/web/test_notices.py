"""?notice= carries a code, never text: every page that shows a notice after a redirect turns the
code into its own message, about a subject it lists, and ignores anything else in the URL."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from backend.web.notices import NOTICES
from tests.web.test_pages import csrf_of, sign_in

PAGES = ["/flags", "/admin/users", "/admin/tokens", "/providers", "/credentials"]
INJECTED = "Call 555-0100 and read them your password"


@pytest.fixture
def web(client: TestClient, people: None, admin_headers: dict[str, str]) -> TestClient:
    made = client.post(
        "/api/providers",
        headers=admin_headers,
        json={"name": "prod", "account_id": "123456789012", "default_region": "us-east-1"},
    )
    assert made.status_code == 201, made.text
    sign_in(client, "ada")
    return client


@pytest.mark.parametrize("path", PAGES)
def test_text_in_the_url_is_never_shown(web: TestClient, path: str) -> None:
    for query in (
        {"notice": INJECTED},
        {"notice": "flag_off", "subject": INJECTED},
        {"notice": "user_role", "subject": INJECTED},
        {"notice": "credentials_stored", "subject": INJECTED},
    ):
        r = web.get(path, params=query)
        assert r.status_code == 200, (path, query)
        assert "555-0100" not in r.text, (path, query)
        assert 'role="status"' not in r.text, (path, query)


def test_an_overlong_notice_code_is_refused_with_a_message(web: TestClient) -> None:
    r = web.get("/flags", params={"notice": "x" * 500})
    assert r.status_code == 422


@pytest.mark.parametrize(
    ("path", "query", "shown"),
    [
        (
            "/flags",
            {"notice": "flag_off", "subject": "csrf_tokens_enabled"},
            "csrf_tokens_enabled is now off",
        ),
        ("/admin/users", {"notice": "user_role", "subject": "olga"}, "User olga is now operator"),
        ("/admin/tokens", {"notice": "token_revoked", "subject": "1"}, "Token admin revoked"),
        ("/providers", {"notice": "provider_added", "subject": "prod"}, "Provider prod added"),
        ("/providers", {"notice": "provider_deleted"}, "Provider deleted"),
        (
            "/credentials",
            {"notice": "credentials_stored", "subject": "prod"},
            "Credentials for prod stored",
        ),
    ],
)
def test_known_codes_about_listed_subjects_show_the_pages_own_message(
    web: TestClient, path: str, query: dict[str, Any], shown: str
) -> None:
    r = web.get(path, params=query)
    assert f'<p class="banner ok" role="status">{shown}' in r.text


def test_every_redirect_after_a_form_carries_a_known_code(web: TestClient) -> None:
    token = csrf_of(web.get("/flags").text)
    for path, data in (
        ("/flags/thread_safe_sessions/toggle", {"enabled": "false"}),
        ("/admin/users/vic/disable", {}),
        ("/admin/users/vic/role", {"role": "operator"}),
        ("/admin/tokens/1/revoke", {}),
    ):
        r = web.post(path, data={**data, "csrf_token": token}, follow_redirects=False)
        assert r.status_code == 303, (path, r.text)
        location = r.headers["location"]
        code = location.split("notice=", 1)[1].split("&", 1)[0]
        assert code in NOTICES, location
        assert 'role="status"' in web.get(location).text


def test_a_toggle_that_changes_nothing_says_so(web: TestClient) -> None:
    token = csrf_of(web.get("/flags").text)
    data = {"enabled": "false", "csrf_token": token}
    web.post("/flags/thread_safe_sessions/toggle", data=data)
    again = web.post("/flags/thread_safe_sessions/toggle", data=data)
    assert "thread_safe_sessions was already off: nothing changed" in again.text
