"""Only the two health endpoints (and signing in) are public; the rest of the JSON API needs a
valid token of a sufficient role."""

from __future__ import annotations

import re
from collections.abc import Callable

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from backend.core.config import Settings
from backend.db.base import utcnow
from backend.flags import DEFAULT_FLAGS
from backend.main import create_app
from backend.security.tokens import Role, create_token

PUBLIC = {("GET", "/api/health"), ("GET", "/api/feature-flags/health")}
# Signing in is how a caller gets a session, so it cannot need one.
SIGN_IN = {("POST", "/api/auth/login")}
PATH_VALUES = {"name": "csrf_tokens_enabled", "record_id": "1"}
DEFAULTS = {d.name: d.default for d in DEFAULT_FLAGS}


def endpoints(settings: Settings) -> list[tuple[str, str]]:
    """Every (method, path) of the JSON API, path parameters filled with plausible values."""
    found = []
    for template, operations in create_app(settings).openapi()["paths"].items():
        path = re.sub(r"\{(\w+)\}", lambda m: PATH_VALUES.get(m.group(1), "1"), template)
        found += [(method.upper(), path) for method in sorted(operations)]
    return found


@pytest.fixture
def protected(settings: Settings) -> list[tuple[str, str]]:
    eps = [e for e in endpoints(settings) if e not in PUBLIC | SIGN_IN]
    # The list is discovered, so make sure it did not come up short.
    assert {
        ("POST", "/api/feature-flags/toggle"),
        ("POST", "/api/feature-flags/emergency-rollback"),
        ("POST", "/api/feature-flags/csrf_tokens_enabled/rollback"),
        ("GET", "/api/feature-flags"),
        ("GET", "/api/feature-flags/csrf_tokens_enabled"),
        ("GET", "/api/feature-flags/audit"),
        ("GET", "/api/rollback-records/1"),
        ("GET", "/api/providers"),
        ("GET", "/api/auth/aws-check-credentials"),
        ("GET", "/aws/tools"),
    } <= set(eps)
    return eps


def call(client: TestClient, method: str, path: str, headers: dict[str, str]) -> httpx.Response:
    body = {"flag_name": "csrf_tokens_enabled", "enabled": False} if method == "POST" else None
    return client.request(method, path, json=body, headers=headers)


TokenOf = Callable[[str, Role], str]


@pytest.fixture
def token_of(sessions: sessionmaker[Session]) -> TokenOf:
    """Make an API token of a role, as an admin would."""

    def make(name: str, role: Role) -> str:
        with sessions.begin() as s:
            _row, plaintext = create_token(s, name=name, role=role)
        return plaintext

    return make


BAD_HEADERS = {
    "none": {},
    "unknown token": {"Authorization": "Bearer pcm_" + "A" * 43},
    "not our format": {"Authorization": "Bearer hunter2"},
    "empty bearer": {"Authorization": "Bearer "},
    "basic scheme": {"Authorization": "Basic YWRtaW46YWRtaW4="},
    "huge token": {"Authorization": "Bearer pcm_" + "A" * 5000},
}


@pytest.mark.parametrize("headers", BAD_HEADERS.values(), ids=BAD_HEADERS.keys())
def test_every_non_public_endpoint_refuses_a_missing_or_bad_token(
    client: TestClient,
    admin_headers: dict[str, str],
    protected: list[tuple[str, str]],
    headers: dict[str, str],
) -> None:
    for method, path in protected:
        r = call(client, method, path, headers)
        assert r.status_code == 401, (method, path, r.status_code)
        assert r.headers["WWW-Authenticate"].startswith("Bearer")
        assert r.json()["detail"]
    # Nothing the refused calls asked for happened.
    flags = client.get("/api/feature-flags", headers=admin_headers).json()["flags"]
    assert {f["name"]: f["enabled"] for f in flags} == DEFAULTS
    assert client.get("/api/feature-flags/audit", headers=admin_headers).json()["total"] == 0
    assert client.get("/api/rollback-records", headers=admin_headers).json()["total"] == 0


def test_the_401_says_how_to_authenticate(client: TestClient) -> None:
    r = client.get("/api/feature-flags")
    assert "Authorization: Bearer" in r.json()["detail"]
    r = client.get("/api/feature-flags", headers={"Authorization": "Bearer pcm_nope"})
    assert r.json()["detail"] == "invalid or revoked API token"


def test_public_endpoints_need_no_token(client: TestClient, settings: Settings) -> None:
    assert {e for e in endpoints(settings) if e in PUBLIC} == PUBLIC
    for _, path in PUBLIC:
        assert client.get(path).status_code == 200


def test_an_admin_token_passes_every_endpoint(
    client: TestClient,
    admin_headers: dict[str, str],
    protected: list[tuple[str, str]],
    token_of: TokenOf,
) -> None:
    client.post("/api/feature-flags/csrf_tokens_enabled/rollback", headers=admin_headers)
    for method, path in protected:
        # A token per call: some calls (signing out) revoke the token they came with.
        headers = {"Authorization": f"Bearer {token_of('admin-' + path, Role.ADMIN)}"}
        r = call(client, method, path, headers)
        assert r.status_code not in (401, 403), (method, path, r.status_code, r.text)


def test_the_scheme_is_case_insensitive(client: TestClient, admin_token: str) -> None:
    r = client.get("/api/feature-flags", headers={"Authorization": f"bearer {admin_token}"})
    assert r.status_code == 200


def test_a_viewer_reads_but_cannot_change(client: TestClient, token_of: TokenOf) -> None:
    viewer = {"Authorization": f"Bearer {token_of('dashboard', Role.VIEWER)}"}
    assert client.get("/api/feature-flags", headers=viewer).status_code == 200
    assert client.get("/api/rollback-records", headers=viewer).status_code == 200
    for path in (
        "/api/feature-flags/toggle",
        "/api/feature-flags/emergency-rollback",
        "/api/feature-flags/csrf_tokens_enabled/rollback",
    ):
        r = client.post(
            path, json={"flag_name": "csrf_tokens_enabled", "enabled": False}, headers=viewer
        )
        assert r.status_code == 403
        assert r.json()["detail"] == "this action needs the operator role; you have viewer"
    flags = client.get("/api/feature-flags", headers=viewer).json()["flags"]
    assert {f["name"]: f["enabled"] for f in flags} == DEFAULTS


def test_an_operator_changes_flags_under_its_own_name(
    client: TestClient, token_of: TokenOf
) -> None:
    operator = {"Authorization": f"Bearer {token_of('ops-bot', Role.OPERATOR)}"}
    r = client.post(
        "/api/feature-flags/toggle",
        json={"flag_name": "csrf_tokens_enabled", "enabled": False},
        headers=operator,
    )
    assert r.status_code == 200
    [event] = client.get("/api/feature-flags/audit", headers=operator).json()["items"]
    assert event["actor"] == "token:ops-bot"


def test_a_revoked_token_is_refused(client: TestClient, sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as s:
        row, plaintext = create_token(s, name="leaked", role=Role.ADMIN)
    headers = {"Authorization": f"Bearer {plaintext}"}
    assert client.get("/api/feature-flags", headers=headers).status_code == 200
    with sessions.begin() as s:
        s.merge(row).revoked_at = utcnow()
    r = client.get("/api/feature-flags", headers=headers)
    assert r.status_code == 401
    assert r.json()["detail"] == "invalid or revoked API token"
