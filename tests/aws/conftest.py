"""Fixtures of the AWS tests: moto in server mode on a free loopback port, reached only over
HTTP through PCM_AWS_ENDPOINT_URL (no in-process patching of boto3), with IAM authentication
enforced, so that stored credentials are real emulator keys and bad ones are refused."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import httpx
import pytest
from fastapi.testclient import TestClient
from moto.server import ThreadedMotoServer

ADMIN_POLICY = json.dumps(
    {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
)
ACCOUNT = "123456789012"  # moto's default account
REGIONS = ["us-east-1", "eu-west-1", "ap-southeast-2"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    """One moto server for the whole test session."""
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@dataclass(frozen=True)
class Keys:
    access_key_id: str
    secret_access_key: str

    def body(self) -> dict[str, str]:
        return {"access_key_id": self.access_key_id, "secret_access_key": self.secret_access_key}


@dataclass(frozen=True)
class Emulator:
    url: str
    admin: Keys

    def client(self, service: str, region: str = "us-east-1", keys: Keys | None = None) -> Any:
        keys = keys or self.admin
        return boto3.client(
            service,
            region_name=region,
            endpoint_url=self.url,
            aws_access_key_id=keys.access_key_id,
            aws_secret_access_key=keys.secret_access_key,
        )

    def user_with_keys(self, name: str, policy: str = ADMIN_POLICY) -> Keys:
        iam = self.client("iam")
        iam.create_user(UserName=name)
        iam.put_user_policy(UserName=name, PolicyName="all", PolicyDocument=policy)
        key = iam.create_access_key(UserName=name)["AccessKey"]
        return Keys(key["AccessKeyId"], key["SecretAccessKey"])


@pytest.fixture
def emulator(moto_url: str) -> Emulator:
    """A fresh emulator state with an admin IAM user; authentication is then enforced."""
    return fresh_emulator(moto_url)


def fresh_emulator(moto_url: str) -> Emulator:
    """Reset moto's server to an admin IAM user only, with authentication enforced."""
    httpx.post(f"{moto_url}/moto-api/reset").raise_for_status()
    httpx.post(f"{moto_url}/moto-api/reset-auth", content=b"inf").raise_for_status()
    bootstrap = Emulator(moto_url, Keys("AKIABOOTSTRAP0000000", "bootstrap" * 5))
    admin = bootstrap.user_with_keys("pcm-admin")
    httpx.post(f"{moto_url}/moto-api/reset-auth", content=b"0").raise_for_status()
    return Emulator(moto_url, admin)


@pytest.fixture
def aws_app(
    open_client: Callable[..., TestClient], emulator: Emulator
) -> Callable[..., TestClient]:
    """Start the app against the emulator; keyword arguments override settings."""

    def start(**fields: Any) -> TestClient:
        fields.setdefault("aws_endpoint_url", emulator.url)
        fields.setdefault("aws_connect_timeout", 1.0)
        fields.setdefault("aws_read_timeout", 5.0)
        return open_client(**fields)

    return start


@pytest.fixture
def app_client(aws_app: Callable[..., TestClient]) -> TestClient:
    return aws_app()


@pytest.fixture
def provider(app_client: TestClient, admin_headers: dict[str, str]) -> dict[str, Any]:
    r = app_client.post(
        "/api/providers",
        json={
            "name": "prod",
            "account_id": ACCOUNT,
            "default_region": REGIONS[0],
            "regions": REGIONS,
            "description": "production",
        },
        headers=admin_headers,
    )
    assert r.status_code == 201, r.text
    return dict(r.json())


@pytest.fixture
def with_credentials(
    app_client: TestClient,
    admin_headers: dict[str, str],
    provider: dict[str, Any],
    emulator: Emulator,
) -> dict[str, Any]:
    """The admin token's credentials for `provider` are the emulator admin's keys."""
    r = app_client.put(
        f"/api/aws/credentials/{provider['id']}", json=emulator.admin.body(), headers=admin_headers
    )
    assert r.status_code == 200, r.text
    return provider
