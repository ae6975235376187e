"""`pcm-ops user …`: unlock (the way back in for an account whose sign-ins are blocked),
create without a terminal, and the lists' --json."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from backend.cli import app as cli
from backend.core.config import Settings
from backend.security.users import create_user
from tests.cli.conftest import Cli
from tests.e2e.conftest import ROOT

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


def test_user_create__no_terminal_and_no_password_stdin__says_which_option_to_use(
    initialized_cli: Cli,
) -> None:
    # Given no terminal to prompt on (a script, ssh without -t, cron)
    pcm = str(ROOT / ".venv" / "bin" / "pcm-ops")

    def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [pcm, *args],
            input=stdin,
            stdin=None if stdin is not None else subprocess.DEVNULL,
            env={**os.environ, **initialized_cli.env},
            capture_output=True,
            text=True,
            timeout=60,
        )

    # When a user is created, or a password set, without --password-stdin
    for args in (("user", "create", "alice", "--role", "operator"), ("user", "passwd", "admin")):
        result = run(*args)
        # Then it says to use --password-stdin, exit 2, with no traceback or warning
        assert result.returncode == 2, result.stderr
        assert "--password-stdin" in result.stderr
        assert "Traceback" not in result.stderr and "GetPassWarning" not in result.stderr
    # And with the option it works, and the lists say so in JSON too
    made = run("user", "create", "alice", "--role", "operator", "--password-stdin", stdin=PASSWORD)
    assert made.returncode == 0, made.stderr
    listed = json.loads(run("user", "list", "--json").stdout)
    alice = next(u for u in listed if u["username"] == "alice")
    assert (alice["role"], alice["disabled"], alice["last_login_at"]) == ("operator", False, None)
    assert run("token", "create", "ci", "--role", "viewer").returncode == 0
    tokens = json.loads(run("token", "list", "--json").stdout)
    ci = next(t for t in tokens if t["name"] == "ci")
    assert (ci["role"], ci["revoked_at"], ci["last_used_at"]) == ("viewer", None, None)
    assert "token_hash" not in ci and len(ci["prefix"]) < 20  # never the secret
