"""The banner after an emergency rollback, in-process: on every page for every signed-in role
until an operator acknowledges it (form with CSRF), and the environment's rollback mode named
"safe-defaults mode" so that the two cannot be taken for each other."""

from __future__ import annotations

import re
from collections.abc import Callable

from fastapi.testclient import TestClient

from tests.web.test_pages import csrf_of, sign_in

Headers = dict[str, str]
PAGES = ("/", "/flags", "/history", "/timeline", "/providers", "/credentials", "/tools")


def emergency(client: TestClient, headers: Headers) -> int:
    r = client.post(
        "/api/feature-flags/emergency-rollback", json={"reason": "INC-9 errors"}, headers=headers
    )
    assert r.status_code == 200
    # CSRF protection back on (the rollback turned it off), as after a fix
    on = {"flag_name": "csrf_tokens_enabled", "enabled": True}
    assert client.post("/api/feature-flags/toggle", json=on, headers=headers).status_code == 200
    return int(r.json()["record_id"])


def banner(html: str) -> str | None:
    found = re.search(
        r'<div class="banner danger alert-bar" role="alert" id="rollback-alert">(.*?)</div>',
        html,
        re.S,
    )
    return found.group(1) if found else None


def test_no_banner_before_any_emergency_rollback(client: TestClient, people: None) -> None:
    sign_in(client, "vic")
    assert banner(client.get("/").text) is None


def test_banner_on_every_page_until_an_operator_acknowledges(
    client: TestClient, people: None, admin_headers: Headers
) -> None:
    record_id = emergency(client, admin_headers)
    sign_in(client, "vic")
    for path in PAGES:
        shown = banner(client.get(path).text)
        assert shown is not None, path
        said = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", shown))
        assert re.search(
            rf"Emergency rollback at \d\d:\d\d UTC by token:admin — record #{record_id}: INC-9",
            said,
        ), said
        assert f'href="/records/{record_id}"' in shown
        assert "Acknowledge" not in shown  # a viewer cannot
    token = csrf_of(client.get("/").text)
    refused = client.post(f"/records/{record_id}/acknowledge", data={"csrf_token": token})
    assert refused.status_code == 403
    sign_in(client, "olga")
    page = client.get("/tools").text
    assert "Acknowledge" in banner(page)  # type: ignore[operator]
    token = csrf_of(page)
    without_csrf = client.post(f"/records/{record_id}/acknowledge", data={"next": "/tools"})
    assert without_csrf.status_code == 403
    done = client.post(
        f"/records/{record_id}/acknowledge",
        data={"csrf_token": token, "next": "/tools"},
        follow_redirects=False,
    )
    assert (done.status_code, done.headers["location"]) == (303, "/tools")
    for path in PAGES:
        assert banner(client.get(path).text) is None, path
    record = client.get(f"/records/{record_id}").text
    assert "Acknowledged by olga" in record


def test_acknowledge_goes_back_only_to_this_site(
    client: TestClient, people: None, admin_headers: Headers
) -> None:
    record_id = emergency(client, admin_headers)
    sign_in(client, "olga")
    token = csrf_of(client.get("/").text)
    r = client.post(
        f"/records/{record_id}/acknowledge",
        data={"csrf_token": token, "next": "//evil.example/"},
        follow_redirects=False,
    )
    assert (r.status_code, r.headers["location"]) == (303, "/")


def test_safe_defaults_mode_is_named_apart_from_a_rollback(
    open_client: Callable[..., TestClient], people: None, admin_headers: Headers
) -> None:
    client = open_client(rollback_mode=True)
    sign_in(client, "vic")
    for path in ("/", "/flags", "/tools"):
        html = client.get(path).text
        assert "Safe-defaults mode is ON" in html, path
        assert "FEATURE_FLAG_<wbr>ROLLBACK_<wbr>MODE_<wbr>ENABLED=true" in html
        assert "Rollback mode" not in html and "ROLLBACK MODE" not in html
    dashboard = client.get("/").text
    assert "Last emergency rollback" in dashboard and "none" in dashboard
