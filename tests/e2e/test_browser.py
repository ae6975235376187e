"""The console in a real browser (Debian's chromium driven by Playwright) against a real server.

Screenshots of every page land in artifacts/screenshots/ (git-ignored)."""

from __future__ import annotations

import os
import shutil
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import ROOT, Server

CHROMIUM = os.environ.get("PCM_CHROMIUM", "/usr/bin/chromium")
SHOTS = ROOT / "artifacts" / "screenshots"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

playwright_api = pytest.importorskip("playwright.sync_api")


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not shutil.which(CHROMIUM) and not Path(CHROMIUM).exists():
        message = f"CHROMIUM NOT FOUND at {CHROMIUM}: browser tests SKIPPED (apt install chromium)"
        if os.environ.get("PCM_REQUIRE_BROWSER") == "1":
            pytest.fail(message)
        warnings.warn(message, stacklevel=1)
        pytest.skip(message)
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


class Console:
    """One signed-in browser tab that fails the test on any script error or CSP violation."""

    def __init__(self, browser: object, server: Server, tag: str) -> None:
        self.server, self.tag = server, tag
        self.context = browser.new_context(base_url=server.url)  # type: ignore[attr-defined]
        self.page = self.context.new_page()
        self.problems: list[str] = []
        self.page.on(
            "console",
            lambda m: (
                m.type == "error"
                and not m.text.startswith("Failed to load resource")  # reported with its URL below
                and self.problems.append(m.text)
            ),
        )
        self.page.on("pageerror", lambda e: self.problems.append(str(e)))
        self.page.on("dialog", lambda d: d.accept())
        self.page.on(
            "response",
            lambda r: r.status >= 400 and self.problems.append(f"HTTP {r.status} {r.url}"),
        )

    def shot(self, name: str) -> None:
        SHOTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(SHOTS / f"{self.tag}-{name}.png"), full_page=True)

    def sign_in(self) -> None:
        password = (self.server.data_dir / "admin_password").read_text().strip()
        self.page.goto("/flags")
        assert "/login" in self.page.url
        self.shot("login")
        self.page.get_by_label("Username").fill("admin")
        self.page.get_by_label("Password").fill(password)
        self.page.get_by_role("button", name="Sign in").click()
        self.page.wait_for_load_state()
        assert "/login" not in self.page.url


def walk_through(browser: object, server: Server, tag: str) -> None:
    ui = Console(browser, server, tag)
    ui.sign_in()
    page = ui.page
    page.goto("/")
    assert page.get_by_role("heading", name="Dashboard").is_visible()
    ui.shot("dashboard")

    # Toggle a flag with a reason, then find the change in the history.
    page.goto("/flags")
    row = page.locator("#flag-thread_safe_sessions")
    row.get_by_label("Reason for changing thread_safe_sessions").fill("browser test")
    row.get_by_role("button", name="Disable").click()
    page.wait_for_load_state()
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
