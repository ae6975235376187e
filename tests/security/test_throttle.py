"""The sign-in throttle: per account-and-address and per address, so that an attacker blocks
only themselves; client addresses from X-Forwarded-For only behind PCM_TRUSTED_PROXIES."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from backend.core.config import from_environ
from backend.flags import ConfigurationError
from backend.security.models import WebSession
from backend.security.sessions import hash_session_id

from .conftest import PASSWORD, MakeUser

WRONG = "not the password!"


def browser(client: TestClient, address: str) -> TestClient:
    """Another browser on the same app, connecting from `address`."""
    return TestClient(client.app, client=(address, 50000))


def attempt(client: TestClient, username: str, password: str, **headers: str) -> int:
    r = client.post(
        "/api/auth/login", json={"username": username, "password": password}, headers=headers
    )
    return r.status_code


def test_throttle__account_blocked_from_one_address__owner_signs_in_from_another(
    client: TestClient, make_user: MakeUser
) -> None:
    # Given an attacker who got the admin blocked from their address
    make_user("boss", "admin")
    attacker, owner = browser(client, "127.0.0.2"), browser(client, "127.0.0.3")
    assert [attempt(attacker, "boss", WRONG) for _ in range(6)] == [401] * 5 + [429]
    assert attempt(attacker, "boss", PASSWORD) == 429  # the right password waits there too
    # When the owner signs in from their own address
    # Then they get in (a mistyped password first does not change that)
    assert attempt(owner, "boss", WRONG) == 401
    assert attempt(owner, "boss", PASSWORD) == 200


def test_throttle__one_address_guessing_many_accounts__address_blocked_for_all(
    open_client: Callable[..., TestClient], make_user: MakeUser
) -> None:
    make_user("ann", "viewer")
    client = open_client(login_max_failures_per_address=3)
    guesser, other = browser(client, "127.0.0.2"), browser(client, "127.0.0.3")
    assert [attempt(guesser, name, WRONG) for name in ("u1", "u2", "u3")] == [401] * 3
    assert attempt(guesser, "ann", PASSWORD) == 429
    assert attempt(other, "ann", PASSWORD) == 200


def test_forwarded_for__no_trusted_proxy__rotating_it_does_not_escape_the_address_limit(
    open_client: Callable[..., TestClient],
) -> None:
    # Given the default settings (no trusted proxy) and a client on 127.0.0.1
    local = browser(open_client(login_max_failures_per_address=10), "127.0.0.1")
    # When each failure claims another X-Forwarded-For address and another account
    codes = [
        attempt(local, f"user{i}", WRONG, **{"X-Forwarded-For": f"203.0.113.{i}"})
        for i in range(12)
    ]
    # Then the address limit still applies to the real address
    assert codes == [401] * 10 + [429] * 2


def test_forwarded_for__from_a_trusted_proxy__names_the_client(
    open_client: Callable[..., TestClient], make_user: MakeUser, sessions: sessionmaker[Session]
) -> None:
    make_user("ann", "viewer")
    proxy = browser(open_client(trusted_proxies="127.0.0.1"), "127.0.0.1")
    one, two = {"X-Forwarded-For": "203.0.113.7"}, {"X-Forwarded-For": "203.0.113.8"}
    # Failures through the proxy count against the client it names...
    assert [attempt(proxy, "ann", WRONG, **one) for _ in range(6)] == [401] * 5 + [429]
    # ...so another client behind the same proxy is not blocked
    r = proxy.post("/api/auth/login", json={"username": "ann", "password": PASSWORD}, headers=two)
    assert r.status_code == 200
    with sessions() as s:
        session_id = proxy.cookies["pcm_session"].rsplit(".", 1)[0]  # "<id>.<signature>"
        row = s.get(WebSession, hash_session_id(session_id))
        assert row is not None and row.client_address == "203.0.113.8"


def test_forwarded_for__from_an_untrusted_address__ignored_when_proxies_are_set(
    open_client: Callable[..., TestClient], make_user: MakeUser
) -> None:
    make_user("ann", "viewer")
    client = open_client(trusted_proxies="10.9.9.9, 192.0.2.0/24")
    direct = browser(client, "127.0.0.2")
    codes = [
        attempt(direct, "ann", WRONG, **{"X-Forwarded-For": f"203.0.113.{i}"}) for i in range(6)
    ]
    assert codes == [401] * 5 + [429]


def test_trusted_proxies__not_an_address__refused_at_start_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PCM_TRUSTED_PROXIES", "127.0.0.1, proxy.example")
    with pytest.raises(ConfigurationError, match=r"'proxy\.example' is not an IP address"):
        from_environ()
