"""What the browser tests share: Debian's chromium driven by Playwright (never a downloaded
browser), and a signed-in tab that collects every script error, CSP violation and 4xx/5xx."""

from __future__ import annotations

import os
import shutil
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import Server

CHROMIUM = os.environ.get("PCM_CHROMIUM", "/usr/bin/chromium")
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


def launch_chromium() -> Iterator[Any]:
    """Chromium for a module's tests; skipped (or failed, with PCM_REQUIRE_BROWSER=1) if absent."""
    playwright_api = pytest.importorskip("playwright.sync_api")
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
    """One browser tab on the console that fails the test on any script error or CSP violation
    (`problems`); JS `confirm()` dialogs are accepted."""

    def __init__(
        self,
        browser: Any,
        server: Server,
        tag: str,
        *,
        shots: Path,
        viewport: dict[str, int] | None = None,
        javascript: bool = True,
    ) -> None:
        self.server, self.tag, self.shots = server, tag, shots
        self.context = browser.new_context(
            base_url=server.url, viewport=viewport, java_script_enabled=javascript
        )
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
        self.shots.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(self.shots / f"{self.tag}-{name}.png"), full_page=True)

    def sign_in(self, username: str = "admin", password: str | None = None) -> None:
        if password is None:
            password = (self.server.data_dir / "admin_password").read_text().strip()
        self.page.goto("/flags")
        assert "/login" in self.page.url
        self.shot("login")
        self.page.get_by_label("Username").fill(username)
        self.page.get_by_label("Password").fill(password)
        self.page.get_by_role("button", name="Sign in").click()
        self.page.wait_for_load_state()
        assert "/login" not in self.page.url
