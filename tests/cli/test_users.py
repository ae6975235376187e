"""`pcm-ops user unlock`: the way back in for an account whose sign-ins are blocked."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from backend.cli import app as cli
from backend.core.config import Settings
from backend.security.users import create_user

PASSWORD = "correct horse battery staple"
WRONG = "not the password!"


@pytest.fixture
def pcm_ops(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("PCM_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("PCM_LOG_DIR", str(settings.log_dir))
    return CliRunner()


def login(client: TestClient, password: str) -> int:
    r = client.post("/api/auth/login", json={"username": "boss", "password": password})
    return r.status_code


def test_user_unlock__account_blocked__owner_signs_in_again(
    client: TestClient, sessions: sessionmaker[Session], pcm_ops: CliRunner
) -> None:
    # Given the admin blocked from the only address they can use (the attacker's too)
    with sessions.begin() as s:
        create_user(s, username="boss", password=PASSWORD, role="admin")
    assert [login(client, WRONG) for _ in range(6)][-1] == 429
    assert login(client, PASSWORD) == 429
    # When an operator on the host runs the unlock
    r = pcm_ops.invoke(cli, ["user", "unlock", "Boss"])
    # Then the admin signs in at once
    assert r.exit_code == 0, r.output
    assert "Sign-in blocks of 'boss' cleared" in r.output
    assert login(client, PASSWORD) == 200


def test_user_unlock__with_address__clears_the_address_block(
    open_client: Callable[..., TestClient],
    sessions: sessionmaker[Session],
    pcm_ops: CliRunner,
) -> None:
    with sessions.begin() as s:
        create_user(s, username="boss", password=PASSWORD, role="admin")
    client = open_client(login_max_failures_per_address=2)
    for name in ("x1", "x2"):
        client.post("/api/auth/login", json={"username": name, "password": WRONG})
    assert login(client, PASSWORD) == 429  # the address is blocked, not boss
    r = pcm_ops.invoke(cli, ["user", "unlock", "boss"])
    assert r.exit_code == 0 and "(0 record(s))" in r.output  # boss had no block of his own
    r = pcm_ops.invoke(cli, ["user", "unlock", "boss", "--address", "testclient"])
    assert r.exit_code == 0 and "address testclient cleared (1 record(s))" in r.output
    assert login(client, PASSWORD) == 200


def test_user_unlock__unknown_user__not_found(initialized: object, pcm_ops: CliRunner) -> None:
    r = pcm_ops.invoke(cli, ["user", "unlock", "ghost"])
    assert r.exit_code == 3 and "no user named 'ghost'" in r.output
