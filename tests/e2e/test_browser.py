"""The console in a real browser (Debian's chromium driven by Playwright) against a real server.

Screenshots of every page land in artifacts/screenshots/ (git-ignored)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.aws import conftest as aws_fixtures
from tests.e2e.browser import Console, launch_chromium
from tests.e2e.conftest import ROOT, Server

SHOTS = ROOT / "artifacts" / "screenshots"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    yield from launch_chromium()


def open_console(browser: Any, server: Server, tag: str) -> Console:
    return Console(browser, server, tag, shots=SHOTS)


def walk_through(browser: object, server: Server, tag: str) -> None:
    ui = open_console(browser, server, tag)
    ui.sign_in()
    page = ui.page
    page.goto("/")
    assert page.get_by_role("heading", name="Dashboard").is_visible()
    ui.shot("dashboard")

    # Toggle a flag with a reason (the switch asks for it in a dialog), then find the change
    # in the history.
    page.goto("/flags")
    page.get_by_role("switch", name="thread_safe_sessions").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_label("Reason").fill("browser test")
    with page.expect_navigation():
        dialog.get_by_role("button", name="Turn off").click()
    assert page.get_by_role("status").inner_text().startswith("thread_safe_sessions is now off")
    ui.shot("flags")
    page.get_by_role("link", name="History", exact=True).click()
    page.wait_for_load_state()
    first = page.locator("table.grid tbody tr").first
    assert "thread_safe_sessions" in first.inner_text() and "browser test" in first.inner_text()
    ui.shot("history")

    # Emergency rollback: confirmation and reason, then the result.
    page.goto("/flags")
    page.get_by_role("link", name="Emergency rollback…").click()
    page.get_by_label("Reason").fill("latency doubled")
    page.get_by_label("I confirm").check()
    ui.shot("emergency-confirm")
    page.get_by_role("button", name="Roll back everything").click()
    page.wait_for_load_state()
    assert "success" in page.get_by_role("heading", level=1).inner_text()
    assert page.locator("#changed").is_visible()
    ui.shot("rollback-result")
    page.get_by_role("link", name="Communication message").click()
    assert "ISSUE: latency doubled" in page.locator("#communication").inner_text()
    ui.shot("record")
    page.goto("/timeline")
    assert page.locator("svg line.marker").count() >= 1
    ui.shot("timeline")

    # Sign out really ends the session.
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_load_state()
    page.goto("/flags")
    assert "/login" in page.url
    assert ui.problems == [], ui.problems
    ui.context.close()


def test_console_with_csp_and_csrf_on(browser: object, server: Server) -> None:
    with server.client() as c:
        flags = {f["name"]: f["enabled"] for f in c.get("/api/feature-flags").json()["flags"]}
    assert flags["xss_protection_enabled"] and flags["csrf_tokens_enabled"]
    walk_through(browser, server, "strict")


def test_console_with_csp_and_csrf_off(browser: object, server: Server) -> None:
    with server.client() as c:
        for name in ("xss_protection_enabled", "csrf_tokens_enabled"):
            r = c.post("/api/feature-flags/toggle", json={"flag_name": name, "enabled": False})
            assert r.status_code == 200
    walk_through(browser, server, "legacy")


# moto's server, the same fixtures as tests/aws (module-level names make them this module's).
emulator = aws_fixtures.emulator
moto_url = aws_fixtures.moto_url


def test_providers_credentials_tools_and_admin_pages(
    browser: object, server_dirs: Server, emulator: aws_fixtures.Emulator
) -> None:
    """Add a provider, store and check credentials, run a tool, download its table, then the
    admin pages: against moto's server, with CSP and CSRF on."""
    started = server_dirs.start(extra_env={"PCM_AWS_ENDPOINT_URL": emulator.url})
    assert started.returncode == 0, started.stdout + started.stderr
    ui = open_console(browser, server_dirs, "aws")
    ui.sign_in()
    page = ui.page
    nav = page.get_by_role("navigation", name="Main")

    nav.get_by_role("link", name="Providers").click()
    page.get_by_role("link", name="Add a provider").click()
    page.get_by_label("Name", exact=True).fill("prod")
    page.get_by_label("AWS account id (12 digits)").fill("12345")
    page.get_by_label("Default region").select_option("us-east-1")
    page.get_by_label("eu-west-1", exact=True).check()
    page.get_by_role("button", name="Add provider").click()
    page.wait_for_load_state()
    assert "exactly 12 digits" in page.locator("#account_id-error").inner_text()
    ui.shot("provider-form-error")
    ui.problems.remove(next(p for p in ui.problems if "422" in p))  # the refusal, expected
    page.get_by_label("AWS account id (12 digits)").fill(aws_fixtures.ACCOUNT)
    page.get_by_role("button", name="Add provider").click()
    page.wait_for_load_state()
    assert page.get_by_role("status").inner_text() == "Provider prod added"
    assert "us-east-1, eu-west-1" in page.locator("#providers").inner_text()
    ui.shot("providers")

    nav.get_by_role("link", name="Credentials").click()
    page.get_by_label("Access key id").fill(emulator.admin.access_key_id)
    page.get_by_label("Secret access key").fill(emulator.admin.secret_access_key)
    page.get_by_role("button", name="Store credentials for prod").click()
    page.wait_for_load_state()
    assert page.get_by_role("status").inner_text() == "Credentials for prod stored"
    assert f"****{emulator.admin.access_key_id[-4:]}" in page.locator(".stored").inner_text()
    page.get_by_role("button", name="Check credentials for prod").click()
    page.wait_for_load_state()
    check = page.locator("[id^=check-]").inner_text()
    assert "yes" in check and aws_fixtures.ACCOUNT in check and "user/pcm-admin" in check
    ui.shot("credentials")

    nav.get_by_role("link", name="AWS tools").click()
    ui.shot("tools")
    page.get_by_role("link", name="Who am I").click()
    page.get_by_label("Provider").select_option(
        label=f"prod ({aws_fixtures.ACCOUNT}, us-east-1, eu-west-1)"
    )
    ui.shot("tool-form")
    page.get_by_role("button", name="Run whoami").click()
    page.wait_for_load_state()
    assert page.get_by_role("status").inner_text().startswith("ok: 1 row(s) from provider prod")
    assert aws_fixtures.ACCOUNT in page.locator("#result").inner_text()
    ui.shot("run")
    with page.expect_download() as download:
        page.get_by_role("link", name="Download CSV").click()
    csv_text = Path(download.value.path()).read_text()
    assert csv_text.startswith("account,arn,user_id,account_alias")
    assert aws_fixtures.ACCOUNT in csv_text

    nav.get_by_role("link", name="Users").click()
    new_user = page.get_by_role("region", name="Add a user")
    new_user.get_by_label("Username").fill("eve")
    new_user.get_by_label("Role").select_option("operator")
    new_user.get_by_role("button", name="Add user").click()
    page.wait_for_load_state()
    assert page.locator("#shown-once").inner_text()
    ui.shot("users")
    nav.get_by_role("link", name="Tokens").click()
    page.get_by_label("Name (who or what uses it)").fill("grafana")
    page.get_by_role("button", name="Create token").click()
    page.wait_for_load_state()
    assert page.locator("#shown-once").inner_text().startswith("pcm_")
    ui.shot("tokens")
    assert ui.problems == [], ui.problems
    ui.context.close()
