"""/api/rollback-records: the runbook's rollback log entries."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from backend.api.deps import MAX_DB_INT
from backend.security.tokens import Role, create_token

Headers = dict[str, str]


def emergency(client: TestClient, headers: Headers, reason: str) -> int:
    r = client.post(
        "/api/feature-flags/emergency-rollback", json={"reason": reason}, headers=headers
    )
    assert r.status_code == 200
    return int(r.json()["record_id"])


def test_an_emergency_rollback_leaves_a_verified_record(
    client: TestClient, admin_headers: Headers
) -> None:
    record_id = emergency(client, admin_headers, "INC-11 error rate 60%")
    r = client.get(f"/api/rollback-records/{record_id}", headers=admin_headers)
    assert r.status_code == 200
    rec = r.json()
    assert rec["id"] == record_id
    assert (rec["feature"], rec["trigger"], rec["method"], rec["actor"]) == (
        "ALL",
        "INC-11 error rate 60%",
        "emergency",
        "token:admin",
    )
    assert rec["verification"] == "success"
    assert rec["duration_ms"] >= 0
    assert len(rec["changes"]) == 8
    assert {"flag": "csrf_tokens_enabled", "from": True, "to": False} in rec["changes"]
    assert rec["timestamp"].endswith("+00:00")
    entry = rec["log_entry"].splitlines()
    assert entry[0] == f"[{rec['timestamp']}] ROLLBACK INITIATED"
    assert entry[1:3] == ["Feature: ALL", "Trigger: INC-11 error rate 60%"]
    assert "Method: emergency" in entry
    assert "Verification: success" in entry


def test_a_per_flag_rollback_record(client: TestClient, admin_headers: Headers) -> None:
    r = client.post("/api/feature-flags/xss_protection_enabled/rollback", headers=admin_headers)
    rec = client.get(f"/api/rollback-records/{r.json()['record_id']}", headers=admin_headers)
    body = rec.json()
    assert (body["feature"], body["method"]) == ("xss_protection_enabled", "feature_flag")
    assert body["trigger"] == "rollback of xss_protection_enabled"
    assert body["changes"] == [{"flag": "xss_protection_enabled", "from": True, "to": False}]
    assert body["verification"] == "success"


def test_records_are_listed_newest_first_with_paging(
    client: TestClient, admin_headers: Headers
) -> None:
    ids = [emergency(client, admin_headers, f"drill {i}") for i in range(3)]
    body = client.get("/api/rollback-records", headers=admin_headers).json()
    assert body["total"] == 3
    assert [r["id"] for r in body["items"]] == ids[::-1]
    page = client.get(
        "/api/rollback-records", params={"limit": 1, "offset": 1}, headers=admin_headers
    ).json()
    assert (page["total"], [r["trigger"] for r in page["items"]]) == (3, ["drill 1"])


def test_an_unknown_record_is_a_404_with_a_message(
    client: TestClient, admin_headers: Headers
) -> None:
    r = client.get("/api/rollback-records/999", headers=admin_headers)
    assert r.status_code == 404
    assert r.json()["detail"] == "no rollback record 999"


@pytest.mark.parametrize("record_id", ["abc", "0", "-1", "9" * 30, "99999999999999999999"])
def test_an_impossible_record_id_is_a_422_not_a_500(
    client: TestClient, admin_headers: Headers, record_id: str
) -> None:
    assert (
        client.get(f"/api/rollback-records/{record_id}", headers=admin_headers).status_code == 422
    )


def test_a_huge_offset_is_a_422_not_a_500(client: TestClient, admin_headers: Headers) -> None:
    r = client.get("/api/rollback-records", params={"offset": "9" * 30}, headers=admin_headers)
    assert r.status_code == 422
    r = client.get("/api/rollback-records", params={"offset": MAX_DB_INT}, headers=admin_headers)
    assert (r.status_code, r.json()["items"]) == (200, [])


def test_an_emergency_rollback_is_unacknowledged_until_an_operator_acknowledges_it(
    client: TestClient, admin_headers: Headers, sessions: sessionmaker[Session]
) -> None:
    # Given an emergency rollback
    record_id = emergency(client, admin_headers, "INC-12")
    listing = client.get("/api/rollback-records", headers=admin_headers).json()
    assert listing["unacknowledged_emergency"]["id"] == record_id
    assert listing["items"][0]["acknowledged"] is None
    # When an operator token acknowledges it
    with sessions.begin() as s:
        _, operator = create_token(s, name="oncall", role=Role.OPERATOR)
    r = client.post(
        f"/api/rollback-records/{record_id}/acknowledge",
        headers={"Authorization": f"Bearer {operator}"},
    )
    # Then who and when are stored and shown, and nothing waits for acknowledgement any more
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["record_id"], body["by"], body["method"]) == (record_id, "token:oncall", "api")
    assert body["already_acknowledged"] is False
    record = client.get(f"/api/rollback-records/{record_id}", headers=admin_headers).json()
    assert record["acknowledged"] == {"by": "token:oncall", "at": body["at"], "method": "api"}
    listing = client.get("/api/rollback-records", headers=admin_headers).json()
    assert listing["unacknowledged_emergency"] is None
    # And acknowledging again keeps the first acknowledgement
    again = client.post(f"/api/rollback-records/{record_id}/acknowledge", headers=admin_headers)
    assert again.status_code == 200
    assert (again.json()["by"], again.json()["already_acknowledged"]) == ("token:oncall", True)


def test_a_newer_emergency_rollback_needs_its_own_acknowledgement(
    client: TestClient, admin_headers: Headers
) -> None:
    first = emergency(client, admin_headers, "first")
    client.post(f"/api/rollback-records/{first}/acknowledge", headers=admin_headers)
    # A per-flag rollback is not an emergency: nothing to acknowledge
    client.post("/api/feature-flags/xss_protection_enabled/rollback", headers=admin_headers)
    listing = client.get("/api/rollback-records", headers=admin_headers).json()
    assert listing["unacknowledged_emergency"] is None
    second = emergency(client, admin_headers, "second")
    listing = client.get("/api/rollback-records", headers=admin_headers).json()
    assert listing["unacknowledged_emergency"]["id"] == second


def test_acknowledging_needs_an_operator_and_an_existing_record(
    client: TestClient, admin_headers: Headers, sessions: sessionmaker[Session]
) -> None:
    record_id = emergency(client, admin_headers, "drill")
    with sessions.begin() as s:
        _, viewer = create_token(s, name="grafana", role=Role.VIEWER)
    refused = client.post(
        f"/api/rollback-records/{record_id}/acknowledge",
        headers={"Authorization": f"Bearer {viewer}"},
    )
    assert refused.status_code == 403
    assert client.post(f"/api/rollback-records/{record_id}/acknowledge").status_code == 401
    missing = client.post("/api/rollback-records/999/acknowledge", headers=admin_headers)
    assert missing.status_code == 404 and "no rollback record 999" in missing.text
    listing = client.get("/api/rollback-records", headers=admin_headers).json()
    assert listing["unacknowledged_emergency"]["id"] == record_id
