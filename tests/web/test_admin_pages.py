"""The users and tokens pages in-process: admins only, CSRF, messages beside their fields,
secrets shown once, and every change made through backend.security's services."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from tests.web.conftest import PASSWORD
from tests.web.test_pages import csrf_of, sign_in

PAGES = ("/admin/users", "/admin/tokens")


@pytest.fixture
def web(client: TestClient, people: None) -> TestClient:
    return client


def shown_once(html: str) -> str:
    match = re.search(r'<p class="secret" id="shown-once">([^<]+)</p>', html)
    assert match, "no secret shown"
    return match.group(1)


def test_admin_pages_are_for_admins_only(web: TestClient) -> None:
    for path in PAGES:
        r = web.get(path, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == f"/login?next={path}"
    for user in ("vic", "olga"):
        sign_in(web, user)
        token = csrf_of(web.get("/").text)
        assert 'href="/admin/users"' not in web.get("/").text
        for path in PAGES:
            assert web.get(path).status_code == 403, (user, path)
        for path, data in (
            ("/admin/users", {"username": "eve", "role": "admin"}),
            ("/admin/users/vic/disable", {}),
            ("/admin/users/vic/password", {"password": "x" * 20}),
            ("/admin/users/vic/role", {"role": "admin"}),
            ("/admin/tokens", {"name": "x", "role": "admin"}),
            ("/admin/tokens/1/revoke", {}),
        ):
            assert web.post(path, data={**data, "csrf_token": token}).status_code == 403, path
    sign_in(web, "ada")
    html = web.get("/").text
    assert 'href="/admin/users"' in html and 'href="/admin/tokens"' in html


def test_admin_forms_without_csrf_token_are_refused(web: TestClient) -> None:
    sign_in(web, "ada")
    for path, data in (
        ("/admin/users", {"username": "eve", "role": "viewer", "password": PASSWORD}),
        ("/admin/users/vic/disable", {}),
        ("/admin/users/vic/password", {"password": "y" * 20}),
        ("/admin/tokens", {"name": "ci", "role": "viewer"}),
        ("/admin/tokens/1/revoke", {}),
    ):
        r = web.post(path, data=data)
        assert r.status_code == 403 and "CSRF" in r.text, path
    html = web.get("/admin/users").text
    assert 'id="user-eve"' not in html and 'id="user-vic"' in html
    assert "revoked" not in web.get("/admin/tokens").text


def test_admin_creates_disables_enables_and_resets_users(web: TestClient) -> None:
    sign_in(web, "ada")
    page = web.get("/admin/users").text
    assert all(f'id="user-{u}"' in page for u in ("ada", "olga", "vic", "admin"))
    token = csrf_of(page)

    bad = web.post(
        "/admin/users",
        data={"username": "Bad Name!", "role": "root", "password": "short", "csrf_token": token},
    )
    assert bad.status_code == 422
    errors = dict(re.findall(r'class="field-error" id="([a-z]+)-error">([^<]*)<', bad.text))
    assert errors["username"].startswith("a username is 1-64 characters")
    assert errors["password"].startswith("a password needs at least 12 characters")
    assert errors["role"].startswith("unknown role &#39;root&#39;")
    assert 'value="Bad Name!"' in bad.text

    made = web.post(
        "/admin/users", data={"username": "eve", "role": "operator", "csrf_token": token}
    )
    assert made.status_code == 200 and "User eve added as operator" in made.text
    generated = shown_once(made.text)
    assert "shown once" in made.text
    assert web.get("/admin/users").text.count(generated) == 0  # never again
    taken = web.post(
        "/admin/users",
        data={"username": "eve", "role": "viewer", "password": PASSWORD, "csrf_token": token},
    )
    assert taken.status_code == 409 and "a user named &#39;eve&#39; already exists" in taken.text

    other = TestClient(web.app)
    r = other.post("/login", data={"username": "eve", "password": generated})
    assert r.status_code == 200 and "/login" not in str(r.url)

    off = web.post("/admin/users/eve/disable", data={"csrf_token": token})
    assert "User eve disabled" in off.text
    assert "disabled" in off.text.split('id="user-eve"')[1].split("</tr>")[0]
    assert "/login" in str(other.get("/flags").url)  # the session ended
    on = web.post("/admin/users/eve/enable", data={"csrf_token": token})
    assert "User eve enabled" in on.text

    reset = web.post("/admin/users/eve/password", data={"password": "", "csrf_token": token})
    new_password = shown_once(reset.text)
    assert new_password != generated
    r = other.post("/login", data={"username": "eve", "password": new_password})
    assert "/login" not in str(r.url)
    chosen = web.post("/admin/users/eve/password", data={"password": "x", "csrf_token": token})
    assert chosen.status_code == 422 and "at least 12 characters" in chosen.text

    role = web.post("/admin/users/eve/role", data={"role": "admin", "csrf_token": token})
    assert "User eve is now admin" in role.text
    missing = web.post("/admin/users/nobody/disable", data={"csrf_token": token})
    assert missing.status_code == 404 and "no user named &#39;nobody&#39;" in missing.text


def test_the_last_admin_cannot_be_disabled(web: TestClient) -> None:
    sign_in(web, "ada")
    token = csrf_of(web.get("/admin/users").text)
    web.post("/admin/users/admin/disable", data={"csrf_token": token})
    r = web.post("/admin/users/ada/disable", data={"csrf_token": token})
    assert r.status_code == 422 and "last enabled admin" in r.text


def test_admin_creates_and_revokes_tokens(web: TestClient) -> None:
    sign_in(web, "ada")
    page = web.get("/admin/tokens").text
    assert "admin" in page.split('id="tokens"')[1]  # the init_db token
    token = csrf_of(page)
    bad = web.post("/admin/tokens", data={"name": "", "role": "god", "csrf_token": token})
    assert bad.status_code == 422
    assert re.search(r'id="name-error">[^<]*at least 1 character', bad.text)
    assert re.search(
        r'id="role-error">unknown role',
        web.post("/admin/tokens", data={"name": "ci", "role": "god", "csrf_token": token}).text,
    )

    made = web.post(
        "/admin/tokens", data={"name": "<b>grafana</b>", "role": "viewer", "csrf_token": token}
    )
    assert made.status_code == 200
    secret = shown_once(made.text)
    assert secret.startswith("pcm_")
    assert "<b>grafana</b>" not in made.text and "&lt;b&gt;grafana&lt;/b&gt;" in made.text
    assert secret not in web.get("/admin/tokens").text
    headers = {"Authorization": f"Bearer {secret}"}
    assert web.get("/api/feature-flags", headers=headers).status_code == 200

    token_id = re.search(
        r'id="token-(\d+)">\s*<td data-label="#">\d+</td>\s*<th scope="row">&lt;b', made.text
    )
    assert token_id
    revoked = web.post(f"/admin/tokens/{token_id.group(1)}/revoke", data={"csrf_token": token})
    assert "revoked" in revoked.text
    assert web.get("/api/feature-flags", headers=headers).status_code == 401
    assert web.post("/admin/tokens/999/revoke", data={"csrf_token": token}).status_code == 404


def test_an_admin_has_no_disable_button_on_their_own_row(web: TestClient) -> None:
    # Given ada, an admin, on the users page
    sign_in(web, "ada")
    html = web.get("/admin/users").text
    # Then every other row has its Disable button, and hers has none
    row = html.split('id="user-ada"')[1].split("</tr>")[0]
    assert "/admin/users/ada/disable" not in row and "Disable ada" not in row
    assert "(you)" in row
    for other in ("olga", "vic", "admin"):
        assert f"Disable {other}</button>" in html, other
