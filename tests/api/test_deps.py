"""Shared request types: every integer id in a path or query is bounded, so a number too large
for the database is the caller's mistake (422), never a driver overflow (500)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from backend.api.deps import MAX_DB_INT

HUGE = "99999999999999999999999"
Headers = dict[str, str]


@pytest.mark.parametrize(
    "path",
    [
        f"/api/rollback-records/{HUGE}",
        f"/api/providers/{HUGE}",
        f"/api/aws/runs/{HUGE}",
        f"/api/aws/runs/{HUGE}/download",
        f"/api/auth/aws-check-credentials?provider_id={HUGE}",
        f"/api/rollback-records?offset={HUGE}",
        f"/records/{HUGE}",
        f"/tools/runs/{HUGE}",
        f"/providers/{HUGE}/edit",
        f"/records/{MAX_DB_INT + 1}",
        "/records/0",
        "/api/rollback-records/-1",
    ],
)
def test_get__id_out_of_the_database_range__422(
    client: TestClient, admin_headers: Headers, path: str
) -> None:
    r = client.get(path, headers=admin_headers)
    assert r.status_code == 422, r.text


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("DELETE", f"/api/tokens/{HUGE}"),
        ("DELETE", f"/api/providers/{HUGE}"),
        ("DELETE", f"/api/aws/credentials/{HUGE}"),
        ("POST", f"/admin/tokens/{HUGE}/revoke"),
    ],
)
def test_change__id_out_of_the_database_range__422(
    client: TestClient, admin_headers: Headers, method: str, path: str
) -> None:
    r = client.request(method, path, headers=admin_headers)
    assert r.status_code == 422, r.text


def test_record_page__largest_database_id__404(client: TestClient, admin_headers: Headers) -> None:
    r = client.get(f"/records/{MAX_DB_INT}", headers=admin_headers)
    assert r.status_code == 404
