"""OFREP, the OpenFeature Remote Evaluation Protocol, in-process: the bodies and status codes
OpenFeature's OFREP providers read."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from backend.flags import DEFAULT_FLAGS

CSRF = "csrf_tokens_enabled"
Headers = dict[str, str]


def evaluate(client: TestClient, headers: Headers, key: str, body: object = None) -> dict[str, Any]:
    r = client.post(f"/ofrep/v1/evaluate/flags/{key}", headers=headers, json=body)
    return {"status": r.status_code, **r.json()}


def test_a_flag_evaluates_with_value_variant_reason_and_metadata(
    client: TestClient, admin_headers: Headers
) -> None:
    r = evaluate(client, admin_headers, CSRF, {"context": {"targetingKey": "user-1"}})
    assert r["status"] == 200
    assert (r["key"], r["value"], r["variant"], r["reason"]) == (CSRF, True, "on", "STATIC")
    meta = r["metadata"]
    assert meta["source"] == "stored"
    assert meta["rollbackValue"] is False
    assert isinstance(meta["flagsVersion"], int)
    # Metadata values are what OFREP allows: booleans, strings and numbers only.
    assert all(isinstance(v, bool | str | int | float) for v in meta.values())


def test_a_toggle_and_a_rollback_show_in_the_next_evaluation(
    client: TestClient, admin_headers: Headers
) -> None:
    client.post(
        "/api/feature-flags/toggle",
        headers=admin_headers,
        json={"flag_name": CSRF, "enabled": False},
    )
    assert (evaluate(client, admin_headers, CSRF)["value"]) is False
    client.post(
        "/api/feature-flags/toggle",
        headers=admin_headers,
        json={"flag_name": CSRF, "enabled": True},
    )
    assert evaluate(client, admin_headers, CSRF)["variant"] == "on"
    client.post("/api/feature-flags/emergency-rollback", headers=admin_headers)
    assert evaluate(client, admin_headers, CSRF)["value"] is False


def test_rollback_mode_evaluates_as_disabled(
    open_client: Callable[..., TestClient], admin_headers: Headers
) -> None:
    client = open_client(rollback_mode=True)
    r = evaluate(client, admin_headers, CSRF)
    assert (r["value"], r["reason"], r["metadata"]["source"]) == (
        False,
        "DISABLED",
        "rollback_mode",
    )


def test_an_unknown_flag_is_flag_not_found(client: TestClient, admin_headers: Headers) -> None:
    r = evaluate(client, admin_headers, "no_such_flag")
    assert (r["status"], r["key"], r["errorCode"]) == (404, "no_such_flag", "FLAG_NOT_FOUND")
    long = evaluate(client, admin_headers, "x" * 5000)
    assert (long["status"], long["errorCode"], len(long["key"])) == (404, "FLAG_NOT_FOUND", 200)


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (b"{not json", "PARSE_ERROR"),
        (b"[1, 2]", "PARSE_ERROR"),
        (b'{"context": "user-1"}', "INVALID_CONTEXT"),
    ],
)
def test_bad_requests_get_ofrep_error_codes(
    client: TestClient, admin_headers: Headers, raw: bytes, code: str
) -> None:
    headers = {**admin_headers, "Content-Type": "application/json"}
    one = client.post(f"/ofrep/v1/evaluate/flags/{CSRF}", headers=headers, content=raw)
    assert (one.status_code, one.json()["errorCode"], one.json()["key"]) == (400, code, CSRF)
    assert one.json()["errorDetails"]
    bulk = client.post("/ofrep/v1/evaluate/flags", headers=headers, content=raw)
    assert (bulk.status_code, bulk.json()["errorCode"]) == (400, code)


def test_evaluation_needs_a_credential(client: TestClient) -> None:
    assert client.post(f"/ofrep/v1/evaluate/flags/{CSRF}").status_code == 401
    assert client.post("/ofrep/v1/evaluate/flags").status_code == 401


def test_bulk_evaluation_has_an_etag_that_moves_with_the_flags(
    client: TestClient, admin_headers: Headers
) -> None:
    first = client.post("/ofrep/v1/evaluate/flags", headers=admin_headers, json={})
    assert first.status_code == 200
    flags = {f["key"]: f["value"] for f in first.json()["flags"]}
    assert flags == {d.name: d.default for d in DEFAULT_FLAGS}
    etag = first.headers["etag"]
    same = client.post(
        "/ofrep/v1/evaluate/flags", headers={**admin_headers, "If-None-Match": etag}, json={}
    )
    assert (same.status_code, same.content, same.headers["etag"]) == (304, b"", etag)
    client.post(
        "/api/feature-flags/toggle",
        headers=admin_headers,
        json={"flag_name": CSRF, "enabled": False},
    )
    moved = client.post(
        "/ofrep/v1/evaluate/flags", headers={**admin_headers, "If-None-Match": etag}, json={}
    )
    assert moved.status_code == 200
    assert moved.headers["etag"] != etag
    assert {f["key"]: f["value"] for f in moved.json()["flags"]}[CSRF] is False


def test_configuration_says_boolean_flags_and_polling(
    client: TestClient, admin_headers: Headers
) -> None:
    c = client.get("/ofrep/v1/configuration", headers=admin_headers).json()
    assert c["name"] == "pcm-ops-tools"
    assert c["capabilities"]["flagEvaluation"]["supportedTypes"] == ["boolean"]
    assert c["capabilities"]["cacheInvalidation"]["polling"]["enabled"] is True
