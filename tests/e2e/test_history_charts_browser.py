"""The history, timeline and dashboard chart in Debian's chromium against a real server, on a
phone (390x844) and a laptop (1280x800): no sideways scroll, the "older" link pages, a
rollback group opens, and the range picker changes the time axis.

Screenshots land in artifacts/screenshots/ (git-ignored)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from backend.metrics.models import RequestMetric
from backend.metrics.recorder import LATENCY_BUCKETS_MS
from tests.e2e.browser import ARGS, CHROMIUM, launch_chromium
from tests.e2e.conftest import Server
from tests.e2e.test_browser import SHOTS

if TYPE_CHECKING:
    from playwright.sync_api import Locator

playwright_api = pytest.importorskip("playwright.sync_api")

VIEWPORTS = {"phone": (390, 844), "laptop": (1280, 800)}
FLAG = "thread_safe_sessions"
assert ARGS and CHROMIUM  # the shared launcher: Debian's chromium, never a download


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    yield from launch_chromium()


def seed_old_minutes(server: Server) -> None:
    """Five hours of per-minute request figures, as the workers' recorders would have written
    them: no API writes past minutes, and the picker needs data older than 15 minutes."""
    engine = create_engine(f"sqlite:///{server.data_dir / 'pcm_ops_tools.db'}")
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    try:
        with Session(engine) as s, s.begin():
            for ago in range(20, 300, 2):
                histogram = [0] * len(LATENCY_BUCKETS_MS)
                histogram[3], histogram[7] = 30, ago % 4
                s.add(
                    RequestMetric(
                        minute=now - timedelta(minutes=ago),
                        pid=1,
                        requests=30 + ago % 4,
                        errors=ago % 5 == 0,
                        total_ms=300.0,
                        max_ms=200.0,
                        histogram=histogram,
                    )
                )
    finally:
        engine.dispose()


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server with 105 changes of one flag, then an emergency rollback, and old metrics."""
    with Server.running(tmp_path_factory.mktemp("history")) as server:
        with server.client() as c:
            state = c.get(f"/api/feature-flags/{FLAG}").json()["enabled"]
            for i in range(105):
                state = not state
                r = c.post(
                    "/api/feature-flags/toggle",
                    json={"flag_name": FLAG, "enabled": state, "reason": f"change {i}"},
                )
                assert r.status_code == 200, r.text
            r = c.post("/api/feature-flags/emergency-rollback", json={"reason": "error spike"})
            assert r.status_code == 200, r.text
        seed_old_minutes(server)
        yield server


class Tab:
    """A signed-in tab of one viewport size that records script errors and CSP violations."""

    def __init__(self, browser: object, server: Server, size: str) -> None:
        width, height = VIEWPORTS[size]
        self.size = size
        self.context = browser.new_context(
            base_url=server.url, viewport={"width": width, "height": height}
        )
        self.page = self.context.new_page()
        self.problems: list[str] = []
        self.page.on("console", lambda m: m.type == "error" and self.problems.append(m.text))
        self.page.on("pageerror", lambda e: self.problems.append(str(e)))
        password = (server.data_dir / "admin_password").read_text().strip()
        self.page.goto("/login")
        self.page.get_by_label("Username").fill("admin")
        self.page.get_by_label("Password").fill(password)
        self.page.get_by_role("button", name="Sign in").click()
        self.page.wait_for_load_state()

    def fits(self, what: str) -> None:
        """No sideways scroll on this page, and a screenshot of it."""
        self.page.wait_for_load_state()
        scroll, inner = self.page.evaluate(
            "[document.documentElement.scrollWidth, window.innerWidth]"
        )
        SHOTS.mkdir(parents=True, exist_ok=True)
        path: Path = SHOTS / f"history-{self.size}-{what}.png"
        self.page.screenshot(path=str(path), full_page=True)
        assert scroll <= inner, f"{what} at {self.size}: {scroll} px wide in {inner} px"

    def latency(self) -> Locator:
        """The latency chart of the drawing this screen shows (phones get a narrower one)."""
        shown = self.page.locator(".chart .drawing >> visible=true")
        assert shown.count() == 1
        expected = "drawing-narrow" if self.size == "phone" else "drawing-wide"
        assert expected in (shown.get_attribute("class") or "")
        return shown.locator("svg.panel-latency")

    def x_ticks(self) -> list[str]:
        return self.latency().locator(".x-tick").all_text_contents()


@pytest.mark.parametrize("size", list(VIEWPORTS))
def test_history_pages_and_fits_the_viewport(browser: object, seeded: Server, size: str) -> None:
    tab = Tab(browser, seeded, size)
    page = tab.page
    page.goto("/history")
    tab.fits("history")
    # The emergency rollback is one group; opening it shows each flag's change
    group = page.locator("tr.rollback-group")
    assert group.count() == 1
    assert "error spike" in group.inner_text()
    assert not group.locator("ul.group-events").is_visible()
    summary = group.locator("summary")
    changed = int(summary.inner_text().split(": ")[1].split()[0])  # "…#1: 7 flags changed"
    summary.click()
    assert changed >= 2 and group.locator("ul.group-events li").count() == changed
    assert group.locator("ul.group-events").is_visible()
    tab.fits("history-group-open")
    # "Older" pages past the first hundred changes, and "Newer" comes back
    # 100 changes on the first page: the rollback's, then the newest toggles
    lone_first = 100 - changed
    assert page.locator("table.history > tbody > tr").count() == lone_first + 1
    page.get_by_role("link", name="Older →").first.click()
    page.wait_for_load_state()
    assert "before=" in page.url
    older = page.locator("table.history > tbody > tr").all_inner_texts()
    assert len(older) == 105 - lone_first
    assert f"change {104 - lone_first}" in older[0] and "change 0" in older[-1]
    tab.fits("history-older")
    page.get_by_role("link", name="← Newer").first.click()
    page.wait_for_load_state()
    assert page.locator("tr.rollback-group").count() == 1
    # The filters say their time zone
    assert page.get_by_label("From (UTC)").is_visible()
    # A rollback record's page lists its changes with the same table
    group.get_by_role("link", name="#1").click()
    page.wait_for_load_state()
    assert page.locator("table.history > tbody > tr").count() == changed
    tab.fits("record")
    assert tab.problems == [], tab.problems
    tab.context.close()


@pytest.mark.parametrize("size", list(VIEWPORTS))
def test_charts_range_picker_and_fit_the_viewport(
    browser: object, seeded: Server, size: str
) -> None:
    tab = Tab(browser, seeded, size)
    page = tab.page
    page.goto("/timeline?range=24h")
    tab.fits("timeline-24h")
    day = tab.x_ticks()
    latency = tab.latency()
    assert latency.locator(".y-label").count() == 1
    # 105 toggles and a rollback within seconds: one group, labelled with its count, not a smear
    assert latency.locator(".marker-group").count() == 1
    (label,) = latency.locator(".marker-label").all_text_contents()
    assert label.endswith(" changes") and int(label.split()[0]) > 105
    page.get_by_role("navigation", name="Chart range").get_by_role("link", name="15 min").click()
    page.wait_for_load_state()
    assert "range=15m" in page.url
    quarter = tab.x_ticks()
    assert quarter and quarter != day
    tab.fits("timeline-15m")
    page.goto("/")
    assert tab.latency().locator(".y-label").count() == 1
    tab.fits("dashboard")
    assert tab.problems == [], tab.problems
    tab.context.close()
