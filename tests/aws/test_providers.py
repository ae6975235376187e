"""Providers: CRUD for admins, reads for everyone, field-level validation errors."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from backend.security.tokens import Role, create_token

GOOD = {"name": "staging", "account_id": "210987654321", "default_region": "eu-west-1"}


@pytest.fixture
def client(open_client: Any) -> TestClient:
    return open_client()  # type: ignore[no-any-return]


def token(sessions: sessionmaker[Session], role: Role) -> dict[str, str]:
    with sessions.begin() as s:
        _row, plaintext = create_token(s, name=f"t-{role}", role=role)
    return {"Authorization": f"Bearer {plaintext}"}


def test_crud_round_trip(client: TestClient, admin_headers: dict[str, str]) -> None:
    r = client.post("/api/providers", json={**GOOD, "description": " test "}, headers=admin_headers)
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["regions"] == ["eu-west-1"]
    assert created["description"] == "test"
    pid = created["id"]
    assert client.get(f"/api/providers/{pid}", headers=admin_headers).json()["name"] == "staging"

    r = client.patch(
        f"/api/providers/{pid}",
        json={"regions": ["us-west-2"], "enabled": False},
        headers=admin_headers,
    )
    assert r.status_code == 200, r.text
    assert r.json()["regions"] == ["eu-west-1", "us-west-2"]
    assert r.json()["enabled"] is False

    listing = client.get("/api/providers", headers=admin_headers).json()
    assert [p["name"] for p in listing["items"]] == ["staging"]

    assert client.delete(f"/api/providers/{pid}", headers=admin_headers).status_code == 204
    assert client.get(f"/api/providers/{pid}", headers=admin_headers).status_code == 404
    assert client.delete(f"/api/providers/{pid}", headers=admin_headers).status_code == 404


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("account_id", "12345"),
        ("account_id", "12345678901a"),
        ("account_id", "١٢٣٤٥٦٧٨٩٠١٢"),  # Arabic-Indic digits are not an account id
        ("default_region", "mars-north-1"),
        ("name", ""),
        ("name", "x" * 101),
        ("enabled", "maybe"),
        ("regions", ["eu-west-1", "nowhere-1"]),
    ],
)
def test_bad_fields_are_named(
    client: TestClient, admin_headers: dict[str, str], field: str, value: Any
) -> None:
    r = client.post("/api/providers", json={**GOOD, field: value}, headers=admin_headers)
    assert r.status_code == 422, r.text
    assert field in str(r.json()), r.json()


def test_unknown_fields_and_huge_ids_are_refused(
    client: TestClient, admin_headers: dict[str, str]
) -> None:
    r = client.post("/api/providers", json={**GOOD, "secret": 1}, headers=admin_headers)
    assert r.status_code == 422
    assert client.get(f"/api/providers/{2**70}", headers=admin_headers).status_code == 422
    assert client.patch("/api/providers/1", json={"x": 1}, headers=admin_headers).status_code == 422


def test_duplicate_names_conflict(client: TestClient, admin_headers: dict[str, str]) -> None:
    assert client.post("/api/providers", json=GOOD, headers=admin_headers).status_code == 201
    r = client.post("/api/providers", json=GOOD, headers=admin_headers)
    assert r.status_code == 409
    assert "name" in r.json()["detail"]
    other = client.post(
        "/api/providers", json={**GOOD, "name": "other"}, headers=admin_headers
    ).json()
    r = client.patch(
        f"/api/providers/{other['id']}", json={"name": "staging"}, headers=admin_headers
    )
    assert r.status_code == 409


def test_roles(
    client: TestClient, admin_headers: dict[str, str], sessions: sessionmaker[Session]
) -> None:
    pid = client.post("/api/providers", json=GOOD, headers=admin_headers).json()["id"]
    for role in (Role.VIEWER, Role.OPERATOR):
        headers = token(sessions, role)
        assert client.get("/api/providers", headers=headers).status_code == 200
        assert client.get(f"/api/providers/{pid}", headers=headers).status_code == 200
        assert client.post("/api/providers", json=GOOD, headers=headers).status_code == 403
        assert client.patch(f"/api/providers/{pid}", json={}, headers=headers).status_code == 403
        assert client.delete(f"/api/providers/{pid}", headers=headers).status_code == 403


def test_regions_come_from_botocore(client: TestClient, admin_headers: dict[str, str]) -> None:
    regions = client.get("/api/providers/regions", headers=admin_headers).json()["regions"]
    assert {"us-east-1", "eu-west-1", "cn-north-1", "us-gov-west-1"} <= set(regions)
