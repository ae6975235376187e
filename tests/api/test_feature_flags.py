"""/api/feature-flags over HTTP, in-process: what an operator with curl sees."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from backend.core.config import Settings
from backend.flags import DEFAULT_FLAGS, ConfigurationError

CSRF = "csrf_tokens_enabled"
XSS = "xss_protection_enabled"
PYDANTIC = "pydantic_v2_schemas"
DEFAULTS = {d.name: d.default for d in DEFAULT_FLAGS}
ROLLBACK_VALUES = {d.name: d.rollback_value for d in DEFAULT_FLAGS}
LONG = "x" * 5000
Headers = dict[str, str]


def flags(client: TestClient, headers: Headers) -> dict[str, dict[str, object]]:
    r = client.get("/api/feature-flags", headers=headers)
    assert r.status_code == 200
    return {f["name"]: f for f in r.json()["flags"]}


def effective(client: TestClient, headers: Headers) -> dict[str, object]:
    return {n: f["enabled"] for n, f in flags(client, headers).items()}


def version(client: TestClient, headers: Headers) -> int:
    return int(client.get("/api/feature-flags", headers=headers).json()["version"])


def audit_total(client: TestClient, headers: Headers) -> int:
    return int(client.get("/api/feature-flags/audit", headers=headers).json()["total"])


def toggle(
    client: TestClient, headers: Headers, name: str, enabled: bool, **extra: object
) -> httpx.Response:
    return client.post(
        "/api/feature-flags/toggle",
        json={"flag_name": name, "enabled": enabled, **extra},
        headers=headers,
    )


# -- reading ------------------------------------------------------------------------------
def test_list_shows_every_flag_with_its_effective_value(
    client: TestClient, admin_headers: Headers
) -> None:
    body = client.get("/api/feature-flags", headers=admin_headers).json()
    assert body["rollback_mode"] is False
    assert body["from_last_known_state"] is False
    assert body["version"] >= 1
    assert {f["name"]: f["enabled"] for f in body["flags"]} == DEFAULTS


def test_get_one_flag(client: TestClient, admin_headers: Headers) -> None:
    r = client.get(f"/api/feature-flags/{PYDANTIC}", headers=admin_headers)
    assert r.status_code == 200
    f = r.json()
    assert (f["name"], f["enabled"], f["source"]) == (PYDANTIC, True, "stored")
    assert (f["requires_restart"], f["pending_restart"], f["rollback_value"]) == (
        True,
        False,
        False,
    )


@pytest.mark.parametrize(
    ("name", "detail"),
    [
        ("nope", "unknown feature flag: 'nope'"),
        (LONG, "unknown feature flag: '" + "x" * 77 + "...'"),  # shortened, never a 500
    ],
)
def test_unknown_flag_is_a_404_with_a_message(
    client: TestClient, admin_headers: Headers, name: str, detail: str
) -> None:
    for r in (
        client.get(f"/api/feature-flags/{name}", headers=admin_headers),
        client.get(f"/api/feature-flags/{name}/history", headers=admin_headers),
        client.post(f"/api/feature-flags/{name}/rollback", headers=admin_headers),
        toggle(client, admin_headers, name, False),
    ):
        assert r.status_code == 404, r.text
        assert r.json()["detail"] == detail
    assert effective(client, admin_headers) == DEFAULTS


# -- toggling -----------------------------------------------------------------------------
def test_toggle_changes_the_flag_version_audit_and_log(
    client: TestClient, admin_headers: Headers, settings: Settings
) -> None:
    before, audited = version(client, admin_headers), audit_total(client, admin_headers)
    r = toggle(client, admin_headers, CSRF, False, reason="INC-42 login loop")
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["previous"], body["changed"], body["flag"]["enabled"]) == (True, True, False)
    assert body["version"] == before + 1 == version(client, admin_headers)
    assert effective(client, admin_headers)[CSRF] is False
    assert (
        client.get(f"/api/feature-flags/{CSRF}", headers=admin_headers).json()["enabled"] is False
    )
    assert audit_total(client, admin_headers) == audited + 1
    [event] = client.get(
        "/api/feature-flags/audit", params={"limit": 1}, headers=admin_headers
    ).json()["items"]
    assert (event["flag_name"], event["old_value"], event["new_value"]) == (CSRF, True, False)
    assert (event["actor"], event["method"], event["reason"]) == (
        "token:admin",
        "api",
        "INC-42 login loop",
    )
    lines = [
        line
        for line in settings.log_file.read_text().splitlines()
        if f"Feature flag {CSRF}" in line
    ]
    assert len(lines) == 1
    assert "enabled -> disabled" in lines[0]
    assert "by token:admin" in lines[0]
    assert "via api" in lines[0]
    assert "reason: INC-42 login loop" in lines[0]


def test_toggle_back_and_forth(client: TestClient, admin_headers: Headers) -> None:
    assert toggle(client, admin_headers, CSRF, False).json()["changed"] is True
    assert toggle(client, admin_headers, CSRF, False).json()["changed"] is False
    assert toggle(client, admin_headers, CSRF, True).json()["flag"]["enabled"] is True
    assert effective(client, admin_headers)[CSRF] is True


@pytest.mark.parametrize(
    "body",
    [
        {"flag_name": CSRF, "enabled": "yes"},
        {"flag_name": CSRF, "enabled": 1},
        {"flag_name": CSRF, "enabled": 0},
        {"flag_name": CSRF, "enabled": "false"},
        {"flag_name": CSRF, "enabled": None},
        {"flag_name": CSRF},
        {"enabled": False},
        {"flag_name": "", "enabled": False},
        {"flag_name": 5, "enabled": False},
        {"flag_name": CSRF, "enabled": False, "reason": "r" * 2001},
        [CSRF, False],
    ],
)
def test_a_bad_body_is_a_422_and_changes_nothing(
    client: TestClient, admin_headers: Headers, body: object
) -> None:
    before, audited = version(client, admin_headers), audit_total(client, admin_headers)
    r = client.post("/api/feature-flags/toggle", json=body, headers=admin_headers)
    assert r.status_code == 422, r.text
    assert r.json()["detail"]  # says what is wrong
    assert effective(client, admin_headers) == DEFAULTS
    assert version(client, admin_headers) == before
    assert audit_total(client, admin_headers) == audited


@pytest.mark.parametrize(
    "raw", [b'{"flag_name": "csrf_tokens_enabled", "enabled": fa', b"", b"nul"]
)
def test_malformed_json_is_a_422(client: TestClient, admin_headers: Headers, raw: bytes) -> None:
    r = client.post(
        "/api/feature-flags/toggle",
        content=raw,
        headers={**admin_headers, "Content-Type": "application/json"},
    )
    assert r.status_code == 422
    assert effective(client, admin_headers) == DEFAULTS


# -- the version header ---------------------------------------------------------------------
def test_every_response_carries_a_growing_flags_version(
    client: TestClient, admin_headers: Headers
) -> None:
    responses = [
        client.get("/api/health"),
        client.get("/api/feature-flags/health"),
        client.get("/api/feature-flags", headers=admin_headers),
        client.get("/api/feature-flags/nope", headers=admin_headers),
        client.get("/api/feature-flags"),  # 401
        client.post("/api/feature-flags/toggle", json={}, headers=admin_headers),  # 422
        client.get("/no/such/route"),
    ]
    first = {r.headers["X-Flags-Version"] for r in responses}
    assert len(first) == 1
    v0 = int(first.pop())
    assert v0 == version(client, admin_headers)
    r = toggle(client, admin_headers, CSRF, False)
    assert int(r.headers["X-Flags-Version"]) == r.json()["version"] == v0 + 1
    r = client.post("/api/feature-flags/emergency-rollback", headers=admin_headers)
    assert int(r.headers["X-Flags-Version"]) == v0 + 2
    assert int(client.get("/api/health").headers["X-Flags-Version"]) == v0 + 2


# -- rollback -------------------------------------------------------------------------------
def test_emergency_rollback_sets_every_flag_to_its_rollback_value(
    client: TestClient, admin_headers: Headers, settings: Settings
) -> None:
    before, audited = version(client, admin_headers), audit_total(client, admin_headers)
    r = client.post(
        "/api/feature-flags/emergency-rollback", json={"reason": "INC-7"}, headers=admin_headers
    )
    assert r.status_code == 200, r.text
    body = r.json()
    changed = {n for n in DEFAULTS if DEFAULTS[n] != ROLLBACK_VALUES[n]}
    assert {c["flag"] for c in body["changed"]} == changed
    assert all(c["from"] is True and c["to"] is False for c in body["changed"])
    assert set(body["unchanged"]) == set(DEFAULTS) - changed
    assert body["requires_restart"] == [PYDANTIC]
    assert body["verification"] == "success"
    assert isinstance(body["record_id"], int)
    assert 0 <= body["duration_ms"] < 5000
    assert body["version"] == before + 1  # one transaction, one version
    assert effective(client, admin_headers) == ROLLBACK_VALUES
    assert audit_total(client, admin_headers) == audited + len(changed)
    items = client.get(
        "/api/feature-flags/audit", params={"method": "emergency"}, headers=admin_headers
    ).json()["items"]
    assert {e["rollback_record_id"] for e in items} == {body["record_id"]}
    assert {e["version"] for e in items} == {body["version"]}
    assert {e["reason"] for e in items} == {"INC-7"}
    record = client.get(f"/api/rollback-records/{body['record_id']}", headers=admin_headers)
    assert record.status_code == 200
    assert record.json()["verification"] == "success"
    assert record.json()["feature"] == "ALL"
    log = settings.log_file.read_text()
    assert "Feature flag emergency rollback completed" in log
    assert f"Feature flag {CSRF} changed: enabled -> disabled by token:admin via emergency" in log


def test_emergency_rollback_without_a_body(client: TestClient, admin_headers: Headers) -> None:
    r = client.post("/api/feature-flags/emergency-rollback", headers=admin_headers)
    assert r.status_code == 200
    assert effective(client, admin_headers) == ROLLBACK_VALUES
    again = client.post("/api/feature-flags/emergency-rollback", headers=admin_headers).json()
    assert again["changed"] == []
    assert sorted(again["unchanged"]) == sorted(DEFAULTS)
    assert again["requires_restart"] == []


def test_emergency_rollback_with_a_malformed_body_is_a_422(
    client: TestClient, admin_headers: Headers
) -> None:
    r = client.post(
        "/api/feature-flags/emergency-rollback",
        content=b"{oops",
        headers={**admin_headers, "Content-Type": "application/json"},
    )
    assert r.status_code == 422
    assert effective(client, admin_headers) == DEFAULTS


def test_rollback_of_one_flag(client: TestClient, admin_headers: Headers) -> None:
    r = client.post(
        f"/api/feature-flags/{CSRF}/rollback", json={"reason": "INC-9"}, headers=admin_headers
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["changed"] == [{"flag": CSRF, "from": True, "to": False}]
    assert body["unchanged"] == []
    assert body["verification"] == "success"
    values = effective(client, admin_headers)
    assert values[CSRF] is False
    assert {n: v for n, v in values.items() if n != CSRF} == {
        n: v for n, v in DEFAULTS.items() if n != CSRF
    }
    record = client.get(f"/api/rollback-records/{body['record_id']}", headers=admin_headers)
    assert (record.json()["feature"], record.json()["trigger"]) == (CSRF, "INC-9")


# -- changes that change nothing record nothing ----------------------------------------------
def records_total(client: TestClient, headers: Headers) -> int:
    return len(client.get("/api/rollback-records", headers=headers).json()["items"])


def test_toggle__to_the_value_the_flag_has__records_nothing_and_says_so(
    client: TestClient, admin_headers: Headers, settings: Settings
) -> None:
    # Given a flag that is on, and one at its rollback value
    assert toggle(client, admin_headers, XSS, False).json()["changed"] is True
    before, audited = version(client, admin_headers), audit_total(client, admin_headers)
    log_before = settings.log_file.read_text().count("Feature flag")
    # When each is set to the value it has
    on = toggle(client, admin_headers, CSRF, True)
    off = toggle(client, admin_headers, XSS, False)
    # Then both answer 200 with changed false and say why, and nothing is recorded
    assert on.status_code == off.status_code == 200
    assert (on.json()["changed"], on.json()["previous"], on.json()["flag"]["enabled"]) == (
        False,
        True,
        True,
    )
    assert on.json()["message"] == f"{CSRF} is already enabled: nothing changed"
    assert off.json()["message"] == (
        f"{XSS} is already at its rollback value (disabled): nothing changed"
    )
    assert on.json()["version"] == off.json()["version"] == before == version(client, admin_headers)
    assert audit_total(client, admin_headers) == audited
    history = client.get(f"/api/feature-flags/{XSS}/history", headers=admin_headers).json()
    assert [(e["old_value"], e["new_value"]) for e in history["items"]] == [(True, False)]
    assert settings.log_file.read_text().count("Feature flag") == log_before


def test_rollback_of_a_flag__at_its_rollback_value__records_nothing_and_says_so(
    client: TestClient, admin_headers: Headers
) -> None:
    # Given a flag rolled back once
    first = client.post(f"/api/feature-flags/{CSRF}/rollback", headers=admin_headers).json()
    assert first["nothing_changed"] is False and isinstance(first["record_id"], int)
    before, audited = version(client, admin_headers), audit_total(client, admin_headers)
    records = records_total(client, admin_headers)
    # When it is rolled back again
    r = client.post(f"/api/feature-flags/{CSRF}/rollback", headers=admin_headers)
    # Then the answer says nothing changed, and there is no record, event or version
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["changed"], body["unchanged"], body["record_id"]) == ([], [CSRF], None)
    assert (body["nothing_changed"], body["verification"]) == (True, "success")
    assert body["message"] == (
        f"{CSRF} is already at its rollback value: nothing changed, nothing recorded"
    )
    assert body["version"] == before == version(client, admin_headers)
    assert audit_total(client, admin_headers) == audited
    assert records_total(client, admin_headers) == records


def test_emergency_rollback__everything_at_its_rollback_value__leaves_only_a_record_saying_so(
    client: TestClient, admin_headers: Headers
) -> None:
    # Given every flag rolled back
    client.post("/api/feature-flags/emergency-rollback", headers=admin_headers)
    before, audited = version(client, admin_headers), audit_total(client, admin_headers)
    # When the emergency rollback runs again
    r = client.post("/api/feature-flags/emergency-rollback", headers=admin_headers)
    # Then its record says nothing needed changing; no event, no new version
    body = r.json()
    assert (r.status_code, body["nothing_changed"], body["changed"]) == (200, True, [])
    assert body["message"] == (
        "every flag was already at its rollback value: nothing needed changing"
        f" (record {body['record_id']})"
    )
    assert body["version"] == before == version(client, admin_headers)
    assert audit_total(client, admin_headers) == audited
    record = client.get(f"/api/rollback-records/{body['record_id']}", headers=admin_headers).json()
    assert (record["feature"], record["changes"], record["verification"]) == ("ALL", [], "success")


# -- rollback mode and overrides ------------------------------------------------------------
def test_rollback_mode_serves_rollback_values_and_refuses_enabling(
    open_client: Callable[..., TestClient], admin_headers: Headers
) -> None:
    client = open_client(rollback_mode=True)
    body = client.get("/api/feature-flags", headers=admin_headers).json()
    assert body["rollback_mode"] is True
    assert {f["name"]: f["enabled"] for f in body["flags"]} == ROLLBACK_VALUES
    assert {f["source"] for f in body["flags"]} == {"rollback_mode"}
    assert {f["name"]: f["stored_enabled"] for f in body["flags"]} == DEFAULTS  # untouched
    audited = audit_total(client, admin_headers)

    r = toggle(client, admin_headers, "postgresql_support", True)
    assert r.status_code == 409
    assert "rollback mode is on" in r.json()["detail"]
    assert "FEATURE_FLAG_ROLLBACK_MODE_ENABLED" in r.json()["detail"]
    assert audit_total(client, admin_headers) == audited
    assert toggle(client, admin_headers, "nope", True).status_code == 404

    r = toggle(client, admin_headers, CSRF, False)
    assert r.status_code == 200
    assert flags(client, admin_headers)[CSRF]["stored_enabled"] is False
    health = client.get("/api/feature-flags/health").json()
    assert health["rollback_mode"] is True


def test_env_override_shows_as_source_env(
    open_client: Callable[..., TestClient], admin_headers: Headers
) -> None:
    client = open_client(flag_overrides={CSRF: False})
    f = client.get(f"/api/feature-flags/{CSRF}", headers=admin_headers).json()
    assert (f["enabled"], f["stored_enabled"], f["source"]) == (False, True, "env")
    assert client.get("/api/feature-flags/health").json()["overrides"] == {CSRF: False}


def test_an_override_of_an_unknown_flag_stops_start_up(
    open_client: Callable[..., TestClient],
) -> None:
    with pytest.raises(ConfigurationError, match="FEATURE_FLAG_NOT_A_FLAG"):
        open_client(flag_overrides={"not_a_flag": True})


def test_a_restart_flag_is_pending_restart_after_a_toggle(
    client: TestClient, admin_headers: Headers
) -> None:
    assert toggle(client, admin_headers, PYDANTIC, False).json()["flag"]["pending_restart"] is True
    assert flags(client, admin_headers)[PYDANTIC]["pending_restart"] is True
    assert client.get("/api/feature-flags/health").json()["pending_restart"] == [PYDANTIC]
    toggle(client, admin_headers, PYDANTIC, True)
    assert flags(client, admin_headers)[PYDANTIC]["pending_restart"] is False


# -- audit ------------------------------------------------------------------------------------
def test_audit_pages_newest_first_with_total(client: TestClient, admin_headers: Headers) -> None:
    for i in range(6):
        toggle(client, admin_headers, CSRF, i % 2 == 1, reason=f"step {i}")
    toggle(client, admin_headers, "xss_protection_enabled", False)
    page = client.get(
        "/api/feature-flags/audit", params={"limit": 3, "offset": 2}, headers=admin_headers
    ).json()
    assert (page["total"], page["limit"], page["offset"]) == (7, 3, 2)
    assert [e["reason"] for e in page["items"]] == ["step 4", "step 3", "step 2"]
    ids = [e["id"] for e in page["items"]]
    assert ids == sorted(ids, reverse=True)
    by_flag = client.get(
        "/api/feature-flags/audit", params={"flag": CSRF, "limit": 100}, headers=admin_headers
    ).json()
    assert by_flag["total"] == 6
    beyond = client.get(
        "/api/feature-flags/audit", params={"offset": 50}, headers=admin_headers
    ).json()
    assert (beyond["total"], beyond["items"]) == (7, [])
    by_actor = client.get(
        "/api/feature-flags/audit", params={"actor": "someone-else"}, headers=admin_headers
    ).json()
    assert by_actor["total"] == 0


@pytest.mark.parametrize("path", ["/api/feature-flags/audit", f"/api/feature-flags/{CSRF}/history"])
@pytest.mark.parametrize(
    "params", [{"limit": 0}, {"limit": 1001}, {"offset": -1}, {"limit": "a"}, {"offset": "9" * 30}]
)
def test_bad_paging_is_a_422_not_a_500(
    client: TestClient, admin_headers: Headers, path: str, params: dict[str, object]
) -> None:
    r = client.get(path, params=params, headers=admin_headers)
    assert r.status_code == 422


def test_history_of_one_flag(client: TestClient, admin_headers: Headers) -> None:
    for enabled in (False, True, False):
        toggle(client, admin_headers, CSRF, enabled)
    toggle(client, admin_headers, "xss_protection_enabled", False)
    h = client.get(
        f"/api/feature-flags/{CSRF}/history", params={"limit": 2}, headers=admin_headers
    ).json()
    assert (h["flag"], h["total"], h["limit"], h["offset"]) == (CSRF, 3, 2, 0)
    assert [e["new_value"] for e in h["items"]] == [False, True]
    assert {e["flag_name"] for e in h["items"]} == {CSRF}
    empty = client.get(f"/api/feature-flags/{PYDANTIC}/history", headers=admin_headers).json()
    assert (empty["total"], empty["items"]) == (0, [])


def test_audit_verify_reports_an_intact_chain(client: TestClient, admin_headers: Headers) -> None:
    toggle(client, admin_headers, CSRF, False)
    client.post("/api/feature-flags/emergency-rollback", headers=admin_headers)
    r = client.get("/api/feature-flags/audit/verify", headers=admin_headers).json()
    assert (r["ok"], r["events"], r["problems"]) == (True, audit_total(client, admin_headers), [])
    assert (r["first_bad_event"], r["failed_anchors"], r["warnings"]) == (None, [], [])
    # The app chains with its audit key and checkpoints each change; the report says so.
    assert any("HMAC-SHA256" in c for c in r["checked"])
    assert any("signed checkpoints" in c for c in r["checked"])


def test_audit_verify__while_two_clients_toggle__every_answer_is_ok(
    client: TestClient, admin_headers: Headers
) -> None:
    # Given a trail of some length (each verify reads it all) and two clients toggling
    # through the app's runtime, in threads
    runtime = client.app.state.runtime  # type: ignore[attr-defined]
    for i in range(200):
        runtime.toggle(CSRF, i % 2 == 0, actor="setup", method="api")
    stop = threading.Event()

    def toggling(name: str) -> None:
        i = 0
        while not stop.is_set():
            runtime.toggle(name, i % 2 == 0, actor=f"client-{name}", method="api")
            i += 1

    clients = [threading.Thread(target=toggling, args=(n,)) for n in (CSRF, XSS)]
    for c in clients:
        c.start()

    # When the chain is verified 30 times meanwhile, and on until it has grown under the verifies
    # (on a busy machine the clients may get going late: wait for them rather than time them)
    def verified() -> dict[str, Any]:
        answer: dict[str, Any] = client.get(
            "/api/feature-flags/audit/verify", headers=admin_headers
        ).json()
        return answer

    try:
        answers = [verified() for _ in range(30)]
        deadline = time.monotonic() + 120
        while answers[-1]["events"] <= answers[0]["events"] and time.monotonic() < deadline:
            answers.append(verified())
    finally:
        stop.set()
        for c in clients:
            c.join()
    # Then every answer is ok
    assert [a["problems"] for a in answers if not a["ok"]] == []
    assert answers[-1]["events"] > answers[0]["events"]
