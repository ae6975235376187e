"""Key rotation: `pcm-ops aws rotate-key` re-seals every credential; nothing is lost."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from backend.aws.models import AwsCredential
from backend.cli import app
from backend.core.config import Settings
from backend.security.credentials_crypto import (
    CredentialKeyRing,
    DecryptionFailed,
    KeyRingError,
    fresh_keyring,
    parse_keyring,
)
from tests.aws.conftest import Emulator


def test_seal_binds_owner_row_and_field() -> None:
    ring = fresh_keyring()
    sealed = ring.seal(b"secret", b"alice|1|secret")
    assert ring.open(sealed, b"alice|1|secret") == b"secret"
    with pytest.raises(DecryptionFailed):
        ring.open(sealed, b"mallory|1|secret")
    other = ring.seal(b"secret", b"alice|1|secret")
    assert other.blob[:12] != sealed.blob[:12]  # a fresh nonce per value
    assert len(ring.keys[ring.active_id]) == 32  # AES-256


def test_bad_rings_are_refused_with_a_reason() -> None:
    with pytest.raises(KeyRingError, match="not a valid key ring"):
        parse_keyring("{}", "env")
    with pytest.raises(KeyRingError, match="256 bits"):
        CredentialKeyRing(active_id="a", keys={"a": b"short"})


def test_rotate_key_reseals_and_retires(
    app_client: TestClient,
    admin_headers: dict[str, str],
    with_credentials: dict[str, Any],
    sessions: sessionmaker[Session],
    settings: Settings,
) -> None:
    before = json.loads(settings.credential_keys_file.read_text())
    env = {"PCM_DATA_DIR": str(settings.data_dir), "PCM_LOG_DIR": str(settings.log_dir)}
    result = CliRunner().invoke(app, ["aws", "rotate-key", "--retire", "--json"], env=env)
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["resealed"] == 1
    assert report["retired"] == [before["active"]]
    with sessions() as s:
        assert s.scalars(select(AwsCredential.key_id)).all() == [report["active_key"]]
    # The running server reloads the ring and still reads the credentials.
    data = app_client.get("/api/auth/aws-check-credentials", headers=admin_headers).json()
    assert data["valid"] is True, data
    result = CliRunner().invoke(app, ["aws", "reencrypt", "--json"], env=env)
    assert json.loads(result.output)["resealed"] == 0


def test_key_ring_from_the_environment(
    aws_app: Any, admin_headers: dict[str, str], emulator: Emulator
) -> None:
    ring = fresh_keyring()
    client = aws_app(credential_keys=ring.to_json())
    pid = client.post(
        "/api/providers",
        json={"name": "envkeys", "account_id": "123456789012", "default_region": "us-east-1"},
        headers=admin_headers,
    ).json()["id"]
    r = client.put(f"/api/aws/credentials/{pid}", json=emulator.admin.body(), headers=admin_headers)
    assert r.json()["key_id"] == ring.active_id
    assert client.get("/api/auth/aws-check-credentials", headers=admin_headers).json()["valid"]
