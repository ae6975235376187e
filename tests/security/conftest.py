"""Fixtures of the security tests: users made through the service, sign-in through the API."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from backend.security.users import create_user

PASSWORD = "correct horse battery staple"
MakeUser = Callable[..., str]
Login = Callable[..., str]
SetFlag = Callable[[str, bool], None]


@pytest.fixture
def make_user(sessions: sessionmaker[Session]) -> MakeUser:
    """Create a user; returns the password."""

    def make(username: str, role: str = "operator", password: str = PASSWORD) -> str:
        with sessions.begin() as s:
            create_user(s, username=username, password=password, role=role)
        return password

    return make


@pytest.fixture
def login() -> Login:
    """Sign `client` in over JSON; returns the session's CSRF token."""

    def do(client: TestClient, username: str, password: str = PASSWORD) -> str:
        r = client.post("/api/auth/login", json={"username": username, "password": password})
        assert r.status_code == 200, r.text
        token: str = r.json()["csrf_token"]
        return token

    return do


@pytest.fixture
def set_flag(client: TestClient, admin_headers: dict[str, str]) -> SetFlag:
    """Switch a flag at runtime through the API, with the admin token."""

    def switch(name: str, enabled: bool) -> None:
        r = client.post(
            "/api/feature-flags/toggle",
            json={"flag_name": name, "enabled": enabled},
            headers=admin_headers,
        )
        assert r.status_code == 200, r.text

    return switch
