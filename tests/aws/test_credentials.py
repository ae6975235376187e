"""Credentials: sealed at rest, the caller's own, checked with STS, bounded timeouts, and the
secure_credential_storage flag switched both ways without losing any."""

from __future__ import annotations

import json
import os
import socket
import stat
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, text
from sqlalchemy.orm import Session, sessionmaker

from backend.aws.models import AwsCredential
from backend.core.config import Settings
from backend.security.tokens import Role, create_token
from backend.security.users import create_user
from tests.aws.conftest import ACCOUNT, Emulator, Keys

FLAG = "secure_credential_storage"


def set_flag(client: TestClient, headers: dict[str, str], on: bool) -> None:
    r = client.post(
        "/api/feature-flags/toggle", json={"flag_name": FLAG, "enabled": on}, headers=headers
    )
    assert r.status_code == 200, r.text


def database_dump(sessions: sessionmaker[Session]) -> str:
    """Every row of every table, as text: where a plaintext secret would show."""
    out = []
    with sessions() as s:
        tables = s.execute(text("SELECT name FROM sqlite_master WHERE type='table'")).scalars()
        for table in list(tables):
            for row in s.execute(text(f'SELECT * FROM "{table}"')):
                out.append(repr(tuple(row)))
    return "\n".join(out)


def test_stored_credentials_are_sealed_and_never_echoed(
    app_client: TestClient,
    admin_headers: dict[str, str],
    provider: dict[str, Any],
    emulator: Emulator,
    sessions: sessionmaker[Session],
    settings: Settings,
) -> None:
    r = app_client.put(
        f"/api/aws/credentials/{provider['id']}",
        json={**emulator.admin.body(), "session_token": "FwoGZXIvYXdzEXAMPLETOKEN0123456789"},
        headers=admin_headers,
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["storage"] == "encrypted"
    assert body["access_key_id"] == "****" + emulator.admin.access_key_id[-4:]
    assert emulator.admin.secret_access_key not in r.text
    listing = app_client.get("/api/aws/credentials", headers=admin_headers)
    assert listing.json()["total"] == 1
    assert emulator.admin.secret_access_key not in listing.text

    dump = database_dump(sessions)
    for secret in (
        emulator.admin.secret_access_key,
        emulator.admin.access_key_id,
        "FwoGZXIvYXdzEXAMPLETOKEN0123456789",
    ):
        assert secret not in dump
    with sessions() as s:
        row = s.scalars(select(AwsCredential)).one()
        # nonce (12) + ciphertext + tag (16); the key id is stored beside it.
        assert len(row.secret_access_key_enc) == 12 + len(emulator.admin.secret_access_key) + 16
        assert row.key_id
        assert row.owner == "token:admin"
    ring_file = settings.credential_keys_file
    assert stat.S_IMODE(os.stat(ring_file).st_mode) == 0o600
    log = settings.log_file.read_text()
    assert emulator.admin.secret_access_key not in log


def test_check_credentials_valid_and_invalid(
    app_client: TestClient,
    admin_headers: dict[str, str],
    with_credentials: dict[str, Any],
    emulator: Emulator,
) -> None:
    r = app_client.get("/api/auth/aws-check-credentials", headers=admin_headers)
    assert r.status_code == 200
    data = r.json()
    assert data["valid"] is True
    assert data["account"] == ACCOUNT
    assert data["arn"].endswith(":user/pcm-admin")
    assert data["error"] is None
    assert data["account_matches_provider"] is True

    bad = Keys(emulator.admin.access_key_id, "not-the-secret-key-0000000000000000000000")
    app_client.put(
        f"/api/aws/credentials/{with_credentials['id']}", json=bad.body(), headers=admin_headers
    )
    data = app_client.get(
        f"/api/auth/aws-check-credentials?provider_id={with_credentials['id']}",
        headers=admin_headers,
    ).json()
    assert data["valid"] is False
    assert data["account"] is None and data["arn"] is None
    assert "Signature" in data["error"]
    assert bad.secret_access_key not in json.dumps(data)

    unknown = Keys("AKIAUNKNOWN000000000", "x" * 40)
    app_client.put(
        f"/api/aws/credentials/{with_credentials['id']}", json=unknown.body(), headers=admin_headers
    )
    data = app_client.get("/api/auth/aws-check-credentials", headers=admin_headers).json()
    assert data["valid"] is False
    assert "InvalidClientTokenId" in data["error"]


def test_no_credentials_is_an_answer_not_an_error(
    app_client: TestClient, admin_headers: dict[str, str], provider: dict[str, Any]
) -> None:
    data = app_client.get("/api/auth/aws-check-credentials", headers=admin_headers).json()
    assert data == {
        "valid": False,
        "configured": False,
        "account": None,
        "arn": None,
        "error": "token:admin has no AWS credentials stored for provider 'prod'",
        "provider_id": provider["id"],
    }
    r = app_client.post(
        "/api/aws/tools/whoami/runs", json={"provider_id": provider["id"]}, headers=admin_headers
    )
    assert r.status_code == 404


@pytest.fixture
def hung_port() -> Iterator[int]:
    """A port that accepts connections and never answers."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(16)
        yield int(s.getsockname()[1])


@pytest.mark.parametrize("endpoint", ["closed", "hung"])
def test_a_dead_endpoint_answers_within_seconds(
    aws_app: Callable[..., TestClient],
    admin_headers: dict[str, str],
    emulator: Emulator,
    hung_port: int,
    endpoint: str,
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    port = closed if endpoint == "closed" else hung_port
    client = aws_app(
        aws_endpoint_url=f"http://127.0.0.1:{port}", aws_connect_timeout=1, aws_read_timeout=1
    )
    pid = client.post(
        "/api/providers",
        json={"name": "dead", "account_id": ACCOUNT, "default_region": "us-east-1"},
        headers=admin_headers,
    ).json()["id"]
    client.put(f"/api/aws/credentials/{pid}", json=emulator.admin.body(), headers=admin_headers)
    t0 = time.monotonic()
    data = client.get("/api/auth/aws-check-credentials", headers=admin_headers).json()
    assert time.monotonic() - t0 < 5
    assert data["valid"] is False
    assert ("cannot reach" if endpoint == "closed" else "did not answer") in data["error"]
    t0 = time.monotonic()
    run = client.post(
        "/api/aws/tools/ec2_instances/runs", json={"provider_id": pid}, headers=admin_headers
    ).json()
    assert time.monotonic() - t0 < 5
    assert run["outcome"] == "failed"


def test_credentials_are_the_callers_own_and_delete_really_deletes(
    app_client: TestClient,
    admin_headers: dict[str, str],
    with_credentials: dict[str, Any],
    sessions: sessionmaker[Session],
) -> None:
    with sessions.begin() as s:
        _row, other = create_token(s, name="other", role=Role.OPERATOR)
    other_headers = {"Authorization": f"Bearer {other}"}
    assert app_client.get("/api/aws/credentials", headers=other_headers).json()["total"] == 0
    data = app_client.get("/api/auth/aws-check-credentials", headers=other_headers).json()
    assert data["configured"] is False
    pid = with_credentials["id"]
    assert (
        app_client.delete(f"/api/aws/credentials/{pid}", headers=other_headers).status_code == 404
    )
    assert (
        app_client.delete(f"/api/aws/credentials/{pid}", headers=admin_headers).status_code == 204
    )
    with sessions() as s:
        assert s.scalars(select(AwsCredential)).all() == []
    assert (
        app_client.delete(f"/api/aws/credentials/{pid}", headers=admin_headers).status_code == 404
    )


def test_bad_credential_input_names_the_field(
    app_client: TestClient, admin_headers: dict[str, str], provider: dict[str, Any]
) -> None:
    url = f"/api/aws/credentials/{provider['id']}"
    good = {"access_key_id": "AKIAABCDEFGHIJKLMNOP", "secret_access_key": "s" * 40}
    for field, value in (
        ("access_key_id", "short"),
        ("secret_access_key", "tiny"),
        ("role_arn", "arn:aws:iam::12:role/x"),
    ):
        r = app_client.put(url, json={**good, field: value}, headers=admin_headers)
        assert r.status_code == 422
        assert field in r.text
        assert "s" * 40 not in r.text
    assert (
        app_client.put("/api/aws/credentials/77", json=good, headers=admin_headers).status_code
        == 404
    )


def test_role_to_assume(
    app_client: TestClient,
    admin_headers: dict[str, str],
    provider: dict[str, Any],
    emulator: Emulator,
) -> None:
    trust = json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:user/pcm-admin"},
                    "Action": "sts:AssumeRole",
                }
            ],
        }
    )
    role = emulator.client("iam").create_role(
        RoleName="ops-readonly", AssumeRolePolicyDocument=trust
    )
    app_client.put(
        f"/api/aws/credentials/{provider['id']}",
        json={**emulator.admin.body(), "role_arn": role["Role"]["Arn"]},
        headers=admin_headers,
    )
    data = app_client.get("/api/auth/aws-check-credentials", headers=admin_headers).json()
    assert data["valid"] is True, data
    assert ":assumed-role/ops-readonly/" in data["arn"]


# -- the flag, both ways ------------------------------------------------------------------------
@pytest.fixture
def signed_in(app_client: TestClient, sessions: sessionmaker[Session]) -> dict[str, str]:
    """A signed-in operator: the cookie is kept by the client; returns the CSRF header."""
    with sessions.begin() as s:
        create_user(s, username="alice", password="correct horse battery", role="operator")
    r = app_client.post(
        "/api/auth/login", json={"username": "alice", "password": "correct horse battery"}
    )
    assert r.status_code == 200, r.text
    return {"X-CSRF-Token": r.json()["csrf_token"]}


def test_flag_off_keeps_credentials_in_the_session_and_on_seals_them(
    app_client: TestClient,
    admin_headers: dict[str, str],
    provider: dict[str, Any],
    emulator: Emulator,
    sessions: sessionmaker[Session],
    signed_in: dict[str, str],
) -> None:
    pid = provider["id"]
    secret = emulator.admin.secret_access_key
    # On: alice stores credentials; they are sealed.
    r = app_client.put(f"/api/aws/credentials/{pid}", json=emulator.admin.body(), headers=signed_in)
    assert r.json()["storage"] == "encrypted"

    # Off (rollback): the sealed credentials still work; new ones go to the session (legacy).
    set_flag(app_client, admin_headers, False)
    assert app_client.get("/api/auth/aws-check-credentials").json()["valid"] is True
    second = Keys(*emulator.user_with_keys("alice-2").__dict__.values())
    r = app_client.put(f"/api/aws/credentials/{pid}", json=second.body(), headers=signed_in)
    assert r.json()["storage"] == "session"
    assert second.secret_access_key in database_dump(sessions)  # legacy: plaintext in the session
    data = app_client.get("/api/auth/aws-check-credentials").json()
    assert data["arn"].endswith("user/alice-2")
    # A token caller has no session: with the flag off it cannot store credentials.
    r = app_client.put(f"/api/aws/credentials/{pid}", json=second.body(), headers=admin_headers)
    assert r.status_code == 409
    assert "session" in r.json()["detail"]

    # On again: the sweep seals the session's credentials; no plaintext stays in the database.
    set_flag(app_client, admin_headers, True)
    deadline = time.monotonic() + 5
    while second.secret_access_key in database_dump(sessions) and time.monotonic() < deadline:
        time.sleep(0.1)
    dump = database_dump(sessions)
    assert second.secret_access_key not in dump and secret not in dump
    listing = app_client.get("/api/aws/credentials").json()
    assert [i["storage"] for i in listing["items"]] == ["encrypted"]
    data = app_client.get("/api/auth/aws-check-credentials").json()
    assert data["valid"] is True and data["arn"].endswith("user/alice-2")


def test_the_sweep_seals_sessions_of_users_who_do_not_come_back(
    app_client: TestClient,
    admin_headers: dict[str, str],
    provider: dict[str, Any],
    emulator: Emulator,
    sessions: sessionmaker[Session],
    signed_in: dict[str, str],
) -> None:
    set_flag(app_client, admin_headers, False)
    app_client.put(
        f"/api/aws/credentials/{provider['id']}", json=emulator.admin.body(), headers=signed_in
    )
    assert emulator.admin.secret_access_key in database_dump(sessions)
    set_flag(app_client, admin_headers, True)
    deadline = time.monotonic() + 5
    while emulator.admin.secret_access_key in database_dump(sessions):
        assert time.monotonic() < deadline, "the sweep did not run"
        time.sleep(0.1)
    with sessions() as s:
        assert s.scalars(select(AwsCredential.owner)).all() == ["user:alice"]
