"""Sign-in over JSON and forms, cookies, logout, throttling, tokens (in-process app)."""

from __future__ import annotations

import time
from collections.abc import Callable

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from backend.security.models import ApiToken

from .conftest import PASSWORD, Login, MakeUser


def test_json_login_sets_a_hardened_cookie_holding_only_a_signed_id(
    client: TestClient, make_user: MakeUser
) -> None:
    make_user("ann", "viewer")
    r = client.post("/api/auth/login", json={"username": "ann", "password": PASSWORD})
    assert r.status_code == 200
    assert r.json()["name"] == "user:ann" and r.json()["role"] == "viewer"
    cookie = r.headers["set-cookie"]
    assert cookie.startswith("pcm_session=")
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/" in cookie
    assert "Secure" not in cookie  # plain http here; see the https test
    value = cookie.split(";")[0].split("=", 1)[1]
    assert value.count(".") == 1 and "ann" not in value  # id.signature, no data
    me = client.get("/api/auth/me").json()
    assert (me["name"], me["kind"], me["csrf_token"]) == (
        "user:ann",
        "session",
        r.json()["csrf_token"],
    )


def test_the_cookie_is_secure_over_https(
    open_client: Callable[..., TestClient], make_user: MakeUser
) -> None:
    make_user("ann", "viewer")
    client = open_client()
    client.base_url = client.base_url.copy_with(scheme="https")  # type: ignore[assignment]
    r = client.post("/api/auth/login", json={"username": "ann", "password": PASSWORD})
    assert "Secure" in r.headers["set-cookie"]


def test_form_login_and_logout(client: TestClient, make_user: MakeUser) -> None:
    make_user("ann", "viewer")
    page = client.get("/login")
    assert page.status_code == 200 and 'action="/login"' in page.text
    r = client.post(
        "/login", data={"username": "ann", "password": PASSWORD}, follow_redirects=False
    )
    assert r.status_code == 303 and r.headers["location"] == "/"  # the dashboard
    whoami = client.get("/whoami")
    assert "Signed in as user:ann" in whoami.text
    token = client.get("/api/auth/me").json()["csrf_token"]
    assert f'name="csrf_token" value="{token}"' in whoami.text
    r = client.post("/logout", data={"csrf_token": token}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login"
    assert client.get("/api/auth/me").status_code == 401
    assert client.get("/whoami", follow_redirects=False).status_code == 303


def test_bad_form_login_says_nothing_specific(client: TestClient, make_user: MakeUser) -> None:
    make_user("ann", "viewer")
    for username in ("ann", "nobody"):
        r = client.post("/login", data={"username": username, "password": "wrong password!"})
        assert r.status_code == 401 and "invalid username or password" in r.text


def test_login_issues_a_new_session_id_and_logout_really_ends_it(
    client: TestClient, make_user: MakeUser, login: Login
) -> None:
    make_user("ann", "viewer")
    login(client, "ann")
    first = client.cookies["pcm_session"]
    login(client, "ann")
    second = client.cookies["pcm_session"]
    assert first != second
    # The session from before the second sign-in is gone (no fixation), the new one works.
    stale = TestClient(client.app, cookies={"pcm_session": first})
    assert stale.get("/api/auth/me").status_code == 401
    token = client.get("/api/auth/me").json()["csrf_token"]
    assert client.post("/api/auth/logout", headers={"X-CSRF-Token": token}).json() == {
        "signed_out": True
    }
    # A copy of the cookie kept by an attacker is worth nothing after logout.
    replay = TestClient(client.app, cookies={"pcm_session": second})
    assert replay.get("/api/auth/me").status_code == 401


def test_idle_timeout_ends_the_session(
    open_client: Callable[..., TestClient], make_user: MakeUser, login: Login
) -> None:
    make_user("ann", "viewer")
    client = open_client(session_idle_timeout=0.5)
    login(client, "ann")
    assert client.get("/api/auth/me").status_code == 200
    time.sleep(0.8)
    assert client.get("/api/auth/me").status_code == 401


def test_disabling_a_user_or_changing_the_password_ends_their_sessions(
    client: TestClient, make_user: MakeUser, login: Login, admin_headers: dict[str, str]
) -> None:
    make_user("ann", "viewer")
    ann = TestClient(client.app)
    login(ann, "ann")
    r = client.patch(
        "/api/users/ann", json={"password": "another " + PASSWORD}, headers=admin_headers
    )
    assert r.status_code == 200, r.text
    assert ann.get("/api/auth/me").status_code == 401
    login(ann, "ann", "another " + PASSWORD)
    client.patch("/api/users/ann", json={"disabled": True}, headers=admin_headers)
    assert ann.get("/api/auth/me").status_code == 401
    r = ann.post("/api/auth/login", json={"username": "ann", "password": "another " + PASSWORD})
    assert r.status_code == 401 and r.json()["detail"] == "invalid username or password"


def test_a_role_change_applies_to_the_next_request(
    client: TestClient, make_user: MakeUser, login: Login, admin_headers: dict[str, str]
) -> None:
    make_user("ann", "viewer")
    ann = TestClient(client.app)
    token = login(ann, "ann")
    body = {"flag_name": "csrf_tokens_enabled", "enabled": False}  # a change (on is its value)
    headers = {"X-CSRF-Token": token}
    assert ann.post("/api/feature-flags/toggle", json=body, headers=headers).status_code == 403
    client.patch("/api/users/ann", json={"role": "operator"}, headers=admin_headers)
    r = ann.post("/api/feature-flags/toggle", json=body, headers=headers)
    assert r.status_code == 200
    audit = client.get("/api/feature-flags/audit", headers=admin_headers).json()["items"]
    assert audit[0]["actor"] == "user:ann"


# -- throttling --------------------------------------------------------------------------------
def attempt(client: TestClient, username: str, password: str) -> tuple[int, str]:
    r = client.post("/api/auth/login", json={"username": username, "password": password})
    return r.status_code, r.json()["detail"] if r.status_code != 200 else ""


def test_five_failures_block_the_account_with_a_growing_delay(
    client: TestClient, make_user: MakeUser
) -> None:
    make_user("ann", "viewer")
    for _ in range(5):
        assert attempt(client, "ann", "wrong password!") == (401, "invalid username or password")
    status, detail = attempt(client, "ann", PASSWORD)  # even the right password waits
    assert status == 429 and "try again in 2 seconds" in detail
    r = client.post("/api/auth/login", json={"username": "ann", "password": PASSWORD})
    assert r.headers["Retry-After"] == "2"
    time.sleep(2.1)
    assert attempt(client, "ann", "wrong password!")[0] == 401  # sixth failure: 4 s now
    assert "try again in 4 seconds" in attempt(client, "ann", PASSWORD)[1]
    # Other accounts from this address are not blocked by ann's failures.
    make_user("bob", "viewer")
    assert attempt(client, "bob", PASSWORD) == (200, "")


def test_unknown_users_are_throttled_exactly_like_real_ones(
    client: TestClient, make_user: MakeUser
) -> None:
    make_user("ann", "viewer")
    real = [attempt(client, "ann", "wrong password!") for _ in range(6)]
    ghost = [attempt(client, "ghost", "wrong password!") for _ in range(6)]
    assert real == ghost
    assert real[-1][0] == 429


def test_failures_from_one_address_block_it_for_every_account(
    open_client: Callable[..., TestClient], make_user: MakeUser
) -> None:
    make_user("ann", "viewer")
    client = open_client(login_max_failures_per_address=3)
    for name in ("u1", "u2", "u3"):
        assert attempt(client, name, "wrong password!")[0] == 401
    assert attempt(client, "ann", PASSWORD)[0] == 429


def test_login_takes_as_long_for_unknown_users(client: TestClient, make_user: MakeUser) -> None:
    make_user("ann", "viewer")

    def timed(username: str) -> float:
        started = time.perf_counter()
        client.post("/api/auth/login", json={"username": username, "password": "wrong password!"})
        return time.perf_counter() - started

    known = sorted(timed("ann") for _ in range(3))[1]
    unknown = sorted(timed(f"ghost{i}") for i in range(3))[1]
    # Both do one Argon2 verification; without the dummy check the unknown one is ~100x faster.
    assert unknown > known / 3


# -- API tokens ---------------------------------------------------------------------------------
def test_admin_creates_lists_and_revokes_tokens_over_the_api(
    client: TestClient, admin_headers: dict[str, str], sessions: sessionmaker[Session]
) -> None:
    r = client.post(
        "/api/tokens", json={"name": "grafana", "role": "viewer"}, headers=admin_headers
    )
    assert r.status_code == 201
    made = r.json()
    secret = made.pop("token")
    with sessions() as s:
        row = s.get(ApiToken, made["id"])
        assert row is not None and secret not in (row.token_hash, row.prefix)
    bearer = {"Authorization": f"Bearer {secret}"}
    assert client.get("/api/auth/me", headers=bearer).json()["name"] == "token:grafana"
    listed = client.get("/api/tokens", headers=admin_headers).json()["items"]
    entry = next(t for t in listed if t["id"] == made["id"])
    assert entry["last_used_at"] is not None and "token" not in entry
    # The admin token of data/admin_token is one of them.
    assert any(t["name"] == "admin" and t["role"] == "admin" for t in listed)
    assert client.delete(f"/api/tokens/{made['id']}", headers=admin_headers).status_code == 200
    assert client.get("/api/auth/me", headers=bearer).status_code == 401
    assert client.delete("/api/tokens/999", headers=admin_headers).status_code == 404
    r = client.post("/api/tokens", json={"name": "x", "role": "root"}, headers=admin_headers)
    assert r.status_code == 422


def test_admin_creates_users_over_the_api(
    client: TestClient, admin_headers: dict[str, str], login: Login
) -> None:
    r = client.post(
        "/api/users", json={"username": "cat", "role": "operator"}, headers=admin_headers
    )
    assert r.status_code == 201
    password = r.json()["password"]  # generated, shown once
    assert (
        client.post(
            "/api/users", json={"username": "cat", "role": "viewer"}, headers=admin_headers
        ).status_code
        == 409
    )
    names = [u["username"] for u in client.get("/api/users", headers=admin_headers).json()["items"]]
    assert names == ["admin", "cat"]
    cat = TestClient(client.app)
    login(cat, "cat", password)
    assert cat.get("/api/users").status_code == 403  # operators do not manage users


def test_preferences_live_in_the_session(
    client: TestClient, make_user: MakeUser, login: Login
) -> None:
    make_user("ann", "viewer")
    token = login(client, "ann")
    r = client.post(
        "/api/auth/preferences",
        json={"key": "region", "value": "eu-west-1"},
        headers={"X-CSRF-Token": token},
    )
    assert r.status_code == 200 and r.json() == {"region": "eu-west-1"}
    assert client.get("/api/auth/preferences").json() == {"region": "eu-west-1"}
