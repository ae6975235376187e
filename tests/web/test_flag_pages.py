"""/flags actions that change nothing: the console says so and records nothing."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.web.test_pages import csrf_of, sign_in, users

__all__ = ["users"]
XSS = "xss_protection_enabled"


def audit_total(client: TestClient) -> int:
    return int(client.get("/api/feature-flags/audit").json()["total"])


def test_flag_actions__on_a_flag_at_its_rollback_value__say_so_and_record_nothing(
    client: TestClient, users: None
) -> None:
    # Given an operator, and a flag rolled back from the console once
    sign_in(client, "olga")
    token = csrf_of(client.get("/flags").text)
    first = client.post(f"/flags/{XSS}/rollback", data={"csrf_token": token})
    assert first.status_code == 200 and "Record" in first.text
    before = audit_total(client)
    records = len(client.get("/api/rollback-records").json()["items"])
    # When it is rolled back again, and switched off again
    again = client.post(f"/flags/{XSS}/rollback", data={"csrf_token": token})
    off = client.post(
        f"/flags/{XSS}/toggle",
        follow_redirects=False,
        data={"enabled": "false", "csrf_token": token},
    )
    # Then the flags page says the rollback found it at its rollback value, with no record to
    # link, and the switch that it was already off
    assert again.status_code == 200
    assert f"{XSS} is already at its rollback value" in again.text
    assert "/records/None" not in again.text
    assert off.status_code == 303
    assert f"{XSS} was already off: nothing changed" in client.get(off.headers["location"]).text
    assert audit_total(client) == before
    assert len(client.get("/api/rollback-records").json()["items"]) == records
