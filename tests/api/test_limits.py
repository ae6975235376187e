"""Request body limits in-process: oversized bodies get 413 and deeply nested JSON 422, on every
JSON endpoint, whatever the flags are set to, before any handler parses the body."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from fastapi.testclient import TestClient

from backend.api.limits import BodyTooDeep, DepthScan

Headers = dict[str, str]
MIB = 1024 * 1024
JSON_ENDPOINTS = (
    "/ofrep/v1/evaluate/flags",
    "/ofrep/v1/evaluate/flags/csrf_tokens_enabled",
    "/api/feature-flags/toggle",
    "/api/feature-flags/emergency-rollback",
    "/api/providers",
    "/api/tokens",
)


def nested(levels: int) -> bytes:
    return b'{"context":' + b"[" * levels + b"]" * levels + b"}"


@pytest.fixture(params=["flags as seeded", "rollback mode"])
def any_client(
    request: pytest.FixtureRequest, open_client: Callable[..., TestClient]
) -> TestClient:
    """The app with the flags as seeded, and with every flag at its rollback value."""
    return open_client(rollback_mode=request.param == "rollback mode")


@pytest.mark.parametrize("path", JSON_ENDPOINTS)
def test_json_endpoint__nested_50000_levels__422_not_500(
    any_client: TestClient, admin_headers: Headers, path: str
) -> None:
    # When
    r = any_client.post(
        path, headers={**admin_headers, "Content-Type": "application/json"}, content=nested(50_000)
    )
    # Then
    assert r.status_code == 422, r.text
    assert "deeper than 32 levels" in r.text


@pytest.mark.parametrize("path", JSON_ENDPOINTS)
def test_json_endpoint__10_mib_body__413(
    any_client: TestClient, admin_headers: Headers, path: str
) -> None:
    body = b'{"context": {"pad": "' + b"x" * (10 * MIB) + b'"}}'
    r = any_client.post(
        path, headers={**admin_headers, "Content-Type": "application/json"}, content=body
    )
    assert r.status_code == 413, r.text
    assert "larger than 1048576 bytes" in r.text


def test_ofrep__chunked_body_past_the_limit__413(
    client: TestClient, admin_headers: Headers
) -> None:
    # Given: a body sent in pieces, without Content-Length
    def pieces() -> Iterator[bytes]:
        yield b'{"context": {"pad": "'
        for _ in range(20):
            yield b"x" * (128 * 1024)
        yield b'"}}'

    # When
    r = client.post(
        "/ofrep/v1/evaluate/flags",
        headers={**admin_headers, "Content-Type": "application/json"},
        content=pieces(),
    )
    # Then
    assert r.status_code == 413, r.text


def test_ofrep__context_nested_within_the_limit__evaluates(
    client: TestClient, admin_headers: Headers
) -> None:
    body = {"context": {"targetingKey": "u", "a": [[[{"b": [1, "]]]]"]}]]]}}
    r = client.post(
        "/ofrep/v1/evaluate/flags/csrf_tokens_enabled", headers=admin_headers, json=body
    )
    assert r.status_code == 200, r.text
    assert r.json()["value"] is True


@pytest.mark.parametrize("path", JSON_ENDPOINTS)
@pytest.mark.parametrize("body", [b"\xa5", b'{"flag": "\xff\xfe"}', b'{"a": "\xc3'])
def test_json_endpoint__body_not_utf8__422(
    any_client: TestClient, admin_headers: Headers, path: str, body: bytes
) -> None:
    r = any_client.post(
        path, headers={**admin_headers, "Content-Type": "application/json"}, content=body
    )
    assert r.status_code == 422, r.text
    assert "not valid UTF-8" in r.text


def test_form_page__body_past_the_limit__413(client: TestClient) -> None:
    r = client.post("/login", data={"username": "ada", "password": "x" * (2 * MIB)})
    assert r.status_code == 413


def test_limits__come_from_settings(
    open_client: Callable[..., TestClient], admin_headers: Headers
) -> None:
    # Given: limits lowered in the settings
    client = open_client(max_body_bytes=2048, max_json_depth=3)
    path = "/ofrep/v1/evaluate/flags"
    # When / Then
    assert client.post(path, headers=admin_headers, json={"context": {"a": [1]}}).status_code == 200
    assert (
        client.post(path, headers=admin_headers, json={"context": {"a": [[1]]}}).status_code == 422
    )
    big = {"context": {"pad": "x" * 3000}}
    assert client.post(path, headers=admin_headers, json=big).status_code == 413


@pytest.mark.parametrize(
    ("pieces", "depth"),
    [
        ([b'{"a": "[[[[[["}'], 1),
        ([b'{"a": "\\"[[[[[["}'], 1),
        ([b'{"a": "\\', b'"[[[[", "b": [[]]}'], 3),
        ([b"[[[", b"]]]"], 3),
        ([b'["\\\\"', b", [[]]]"], 3),
    ],
)
def test_depth_scan__brackets_inside_strings_and_escapes__not_counted(
    pieces: list[bytes], depth: int
) -> None:
    # Given: a limit exactly at the real depth
    scan = DepthScan(depth)
    for piece in pieces:
        scan.feed(piece)
    # When: one level below the real depth
    tight = DepthScan(depth - 1)
    # Then
    with pytest.raises(BodyTooDeep):
        for piece in pieces:
            tight.feed(piece)
