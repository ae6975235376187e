"""The console's rollback actions in Debian's chromium against a real server: the banner after an
emergency rollback and its acknowledgement, the flag switch with its reason dialog, per-flag
rollback with its confirmation, and the same forms working with JavaScript off."""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.browser import Console, launch_chromium
from tests.e2e.conftest import Server

PASSWORD = "correct horse battery staple"
PHONE = {"width": 390, "height": 844}


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    yield from launch_chromium()


@pytest.fixture(scope="module")
def shots() -> Path:
    where = Path(tempfile.mkdtemp(prefix="pcm-console-actions-"))
    print(f"\nconsole action screenshots: {where}")
    return where


def flag(server: Server, name: str) -> dict[str, Any]:
    with server.client() as c:
        body: dict[str, Any] = c.get(f"/api/feature-flags/{name}").json()
    return body


def test_banner_stays_until_an_operator_acknowledges_the_emergency_rollback(
    browser: Any, server: Server, shots: Path
) -> None:
    # Given an emergency rollback made from the API, and a viewer and an operator signed in
    with server.client() as c:
        for name, role in (("vic", "viewer"), ("olga", "operator")):
            made = c.post("/api/users", json={"username": name, "role": role, "password": PASSWORD})
            assert made.status_code == 201, made.text
        done = c.post("/api/feature-flags/emergency-rollback", json={"reason": "INC-7 5xx spike"})
        assert done.status_code == 200
        record_id = done.json()["record_id"]
    viewer = Console(browser, server, "viewer", shots=shots, viewport=PHONE)
    viewer.sign_in("vic", PASSWORD)
    operator = Console(browser, server, "operator", shots=shots)
    operator.sign_in("olga", PASSWORD)

    # Then every page says so, naming the time, the person and the record, and the dashboard
    # no longer reads like nothing happened
    for path in ("/", "/flags", "/history", "/tools", "/credentials"):
        operator.page.goto(path)
        banner = operator.page.locator("#rollback-alert")
        assert banner.is_visible(), path
        text = banner.inner_text()
        assert re.search(
            rf"Emergency rollback at \d\d:\d\d UTC by token:admin — record #{record_id}", text
        ), text
        assert "INC-7 5xx spike" in text
    operator.page.goto("/")
    card = operator.page.locator("#last-emergency").inner_text()
    assert f"#{record_id}" in card and "not acknowledged yet" in card
    assert "Safe-defaults mode" in operator.page.locator("#safe-defaults-card").inner_text()
    assert "Rollback mode" not in operator.page.locator("main").inner_text()
    # And a viewer sees the banner without a button
    viewer.page.goto("/flags")
    assert viewer.page.locator("#rollback-alert").is_visible()
    assert viewer.page.locator("#rollback-alert").get_by_role("button").count() == 0
    viewer.shot("banner")

    # When the operator follows the record link, then acknowledges from the banner
    operator.page.goto("/flags")
    operator.shot("banner")
    operator.page.locator("#rollback-alert").get_by_role(
        "link", name=f"record #{record_id}"
    ).click()
    assert operator.page.url.endswith(f"/records/{record_id}")
    operator.page.goto("/tools")
    operator.page.locator("#rollback-alert").get_by_role("button", name="Acknowledge").click()
    operator.page.wait_for_load_state()

    # Then they are back where they were, the banner is gone for everyone, and the record says
    # who acknowledged it, in the console and in the API
    assert operator.page.url.endswith("/tools")
    assert operator.page.locator("#rollback-alert").count() == 0
    viewer.page.reload()
    assert viewer.page.locator("#rollback-alert").count() == 0
    operator.page.goto("/")
    assert "acknowledged by olga" in operator.page.locator("#last-emergency").inner_text()
    operator.page.goto(f"/records/{record_id}")
    assert "Acknowledged by olga" in operator.page.locator("#acknowledgement").inner_text()
    operator.shot("acknowledged")
    with server.client() as c:
        record = c.get(f"/api/rollback-records/{record_id}").json()
        listing = c.get("/api/rollback-records").json()
    assert record["acknowledged"]["by"] == "user:olga"
    assert record["acknowledged"]["method"] == "ui"
    assert listing["unacknowledged_emergency"] is None
    assert f"Rollback record {record_id} acknowledged by user:olga via ui" in (
        server.log_file.read_text()
    )
    assert operator.problems == [] and viewer.problems == [], (operator.problems, viewer.problems)
    operator.context.close()
    viewer.context.close()


def test_flag_switch_asks_for_a_reason_and_rollback_asks_for_confirmation(
    browser: Any, server: Server, shots: Path
) -> None:
    tab = Console(browser, server, "dialog", shots=shots, viewport=PHONE)
    tab.sign_in()
    page = tab.page
    page.goto("/flags")
    switch = page.get_by_role("switch", name="thread_safe_sessions")
    assert switch.get_attribute("aria-checked") == "true"

    # When the switch is pressed, a dialog asks; cancelling changes nothing
    switch.click()
    dialog = page.get_by_role("dialog")
    assert dialog.is_visible()
    assert dialog.get_by_role("heading").inner_text() == "Turn off thread_safe_sessions?"
    tab.shot("switch-dialog")
    dialog.get_by_label("Reason").fill("not this one")
    dialog.get_by_role("button", name="Cancel").click()
    assert not dialog.is_visible()
    assert flag(server, "thread_safe_sessions")["enabled"] is True

    # When confirmed with a reason, the flag changes and the reason is in the history
    switch.click()
    dialog.get_by_label("Reason").fill("sessions lose updates")
    with page.expect_navigation():
        dialog.get_by_role("button", name="Turn off").click()
    assert page.get_by_role("status").inner_text() == "thread_safe_sessions is now off"
    assert page.get_by_role("switch", name="thread_safe_sessions").get_attribute(
        "aria-checked"
    ) == ("false")
    assert flag(server, "thread_safe_sessions")["enabled"] is False
    page.goto("/history?flag=thread_safe_sessions")
    assert "sessions lose updates" in page.locator("main").inner_text()

    # When "Roll back" is pressed, a confirmation asks first; cancelling changes nothing
    page.goto("/flags")
    rollback = page.get_by_role("button", name="Roll back xss_protection_enabled")
    rollback.click()
    assert dialog.get_by_role("heading").inner_text() == "Roll back xss_protection_enabled?"
    tab.shot("rollback-dialog")
    page.keyboard.press("Escape")
    assert not dialog.is_visible()
    assert flag(server, "xss_protection_enabled")["enabled"] is True
    # And confirmed, it rolls back with the reason given, and says so with its record
    rollback.click()
    dialog.get_by_label("Reason").fill("CSP breaks the charts")
    with page.expect_navigation():
        dialog.get_by_role("button", name="Roll back").click()
    assert (
        "Rollback of xss_protection_enabled: success"
        in page.get_by_role("heading", level=1).inner_text()
    )
    assert flag(server, "xss_protection_enabled")["enabled"] is False
    with server.client() as c:
        latest = c.get("/api/rollback-records", params={"limit": 1}).json()["items"][0]
    assert (latest["feature"], latest["trigger"]) == (
        "xss_protection_enabled",
        "CSP breaks the charts",
    )
    assert tab.problems == [], tab.problems
    tab.context.close()


def test_flag_forms_work_without_javascript(browser: Any, server: Server, shots: Path) -> None:
    tab = Console(browser, server, "nojs", shots=shots, viewport=PHONE, javascript=False)
    tab.sign_in()
    page = tab.page
    page.goto("/flags")
    row = page.locator("#flag-csrf_tokens_enabled")
    # The reason field is behind a disclosure, the switch posts the form as it is
    row.get_by_text("reason", exact=True).click()
    row.get_by_label("Reason for changing csrf_tokens_enabled").fill("no-JS browser")
    tab.shot("flags")
    row.get_by_role("switch", name="csrf_tokens_enabled").click()
    page.wait_for_load_state()
    assert page.get_by_role("status").inner_text() == "csrf_tokens_enabled is now off"
    assert page.get_by_role("dialog").count() == 0 or not page.get_by_role("dialog").is_visible()
    page.get_by_role("button", name="Roll back new_secret_key_handling").click()
    page.wait_for_load_state()
    assert "Rollback of new_secret_key_handling: success" in page.locator("h1").inner_text()
    with server.client() as c:
        audit = c.get("/api/feature-flags/csrf_tokens_enabled/history").json()
    assert "no-JS browser" in str(audit)
    assert tab.problems == [], tab.problems
    tab.context.close()
