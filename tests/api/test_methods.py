"""405 answers list every method of the path, whichever route matched first."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("OPTIONS", "/api/users", "GET, POST"),
        ("PUT", "/api/providers/7", "GET, PATCH, DELETE"),
        ("PATCH", "/api/providers/regions", "GET"),
        ("OPTIONS", "/api/aws/credentials/7", "PUT, DELETE"),
    ],
)
def test_undeclared_method__405_with_every_method_of_the_path(
    client: TestClient, admin_headers: dict[str, str], method: str, path: str, allow: str
) -> None:
    r = client.request(method, path, headers=admin_headers)
    assert r.status_code == 405
    assert r.headers["allow"] == allow


def test_undeclared_method__literal_path_shadowing_a_parameter__allow_names_the_literal_route(
    client: TestClient, admin_headers: dict[str, str]
) -> None:
    # GET /api/feature-flags/{name} also matches "toggle", but the path is POST /toggle's.
    r = client.request("OPTIONS", "/api/feature-flags/toggle", headers=admin_headers)
    assert (r.status_code, r.headers["allow"]) == (405, "POST")
