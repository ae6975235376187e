"""Users and tokens: the service, and `pcm-ops user` / `pcm-ops token` on the database."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from backend.cli import app as cli
from backend.core.config import Settings
from backend.security import users
from backend.security.errors import InvalidInput, UserExists, UserNotFound
from backend.security.models import User
from backend.security.tokens import authenticate_token

from .conftest import PASSWORD


def test_passwords_are_stored_as_argon2id(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as s:
        user = users.create_user(s, username="ann", password=PASSWORD, role="viewer")
        assert user.password_hash.startswith("$argon2id$") and PASSWORD not in user.password_hash


def test_authenticate(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as s:
        users.create_user(s, username="ann", password=PASSWORD, role="viewer")
    with sessions.begin() as s:
        assert users.authenticate(s, username="ann", password=PASSWORD) is not None
        assert users.authenticate(s, username="ann", password=PASSWORD + "x") is None
        assert users.authenticate(s, username="nobody", password=PASSWORD) is None
        users.set_disabled(s, username="ann", disabled=True)
    with sessions.begin() as s:
        assert users.authenticate(s, username="ann", password=PASSWORD) is None


@pytest.mark.parametrize(
    ("username", "password", "role", "error"),
    [
        ("Ann Smith", PASSWORD, "viewer", InvalidInput),
        ("ann", "short", "viewer", InvalidInput),
        ("ann", PASSWORD, "root", InvalidInput),
        ("admin", PASSWORD, "viewer", UserExists),  # init_db made it
    ],
)
def test_bad_users_are_refused(
    sessions: sessionmaker[Session], username: str, password: str, role: str, error: type
) -> None:
    with pytest.raises(error), sessions.begin() as s:
        users.create_user(s, username=username, password=password, role=role)


def test_the_last_enabled_admin_cannot_be_disabled_or_demoted(
    sessions: sessionmaker[Session],
) -> None:
    with pytest.raises(InvalidInput, match="last enabled admin"), sessions.begin() as s:
        users.set_disabled(s, username="admin", disabled=True)
    with pytest.raises(InvalidInput, match="last enabled admin"), sessions.begin() as s:
        users.set_role(s, username="admin", role="viewer")
    with sessions.begin() as s:
        users.create_user(s, username="root2", password=PASSWORD, role="admin")
        users.set_disabled(s, username="admin", disabled=True)
    with pytest.raises(UserNotFound), sessions.begin() as s:
        users.set_disabled(s, username="ghost", disabled=True)


def test_the_cli_manages_users_and_tokens(
    settings: Settings, sessions: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PCM_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("PCM_LOG_DIR", str(settings.log_dir))
    if settings.database_url is not None:
        monkeypatch.setenv("DATABASE_URL", settings.database_url)
    run = CliRunner().invoke
    r = run(
        cli,
        ["user", "create", "bob", "--role", "operator", "--password-stdin"],
        input=PASSWORD + "\n",
    )
    assert r.exit_code == 0, r.output
    r = run(cli, ["user", "create", "bob", "--password-stdin"], input=PASSWORD + "\n")
    assert r.exit_code == 2 and "already exists" in r.output
    r = run(cli, ["user", "passwd", "bob", "--password-stdin"], input="new " + PASSWORD + "\n")
    assert r.exit_code == 0, r.output
    with sessions.begin() as s:
        assert users.authenticate(s, username="bob", password="new " + PASSWORD) is not None
    assert run(cli, ["user", "disable", "bob"]).exit_code == 0
    with sessions() as s:
        assert users.get_user(s, username="bob").disabled
    assert run(cli, ["user", "disable", "ghost"]).exit_code == 3
    listing = run(cli, ["user", "list"])
    assert "bob" in listing.output and "disabled" in listing.output

    r = run(cli, ["token", "create", "ci-bot", "--role", "viewer"])
    assert r.exit_code == 0, r.output
    plaintext = r.stdout.strip().splitlines()[-1]
    with sessions.begin() as s:
        who = authenticate_token(s, plaintext)
    assert who is not None and (who.name, who.role) == ("token:ci-bot", "viewer")
    listing = run(cli, ["token", "list"])
    assert "ci-bot" in listing.output and plaintext not in listing.output
    token_id = next(line.split()[1] for line in listing.output.splitlines() if "ci-bot" in line)
    assert run(cli, ["token", "revoke", token_id]).exit_code == 0
    with sessions.begin() as s:
        assert authenticate_token(s, plaintext) is None
    assert run(cli, ["token", "revoke", "999"]).exit_code == 3


def test_init_db_makes_the_first_admin_once(
    settings: Settings, sessions: sessionmaker[Session]
) -> None:
    import stat

    from backend.db.init_db import init_db

    path = settings.admin_password_path
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    password = path.read_text().strip()
    with sessions.begin() as s:
        assert users.authenticate(s, username="admin", password=password) is not None
        users.create_user(s, username="ann", password=PASSWORD, role="viewer")
    report = init_db(settings)
    assert not report.admin_user_created and report.login_hint("http://127.0.0.1:8500") == []
    with sessions() as s:
        assert [u.username for u in users.list_users(s)] == ["admin", "ann"]
        assert s.get(User, 1) is not None
    assert path.read_text().strip() == password
