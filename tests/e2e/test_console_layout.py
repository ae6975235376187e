"""Every page of the console fits a phone (390x844) and a laptop (1280x800): no sideways scroll,
and each page's key controls lie inside the viewport's width. Walked signed in as admin, in
Debian's chromium, against a real server with data on every page (flags changed, an emergency
rollback whose banner is up, a provider, a tool run, users and tokens).

Screenshots go to a temporary directory (its path is printed; PCM_SCREENSHOTS sets another)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.aws.conftest import ACCOUNT, fresh_emulator
from tests.aws.conftest import moto_url as moto_url  # the session's moto server
from tests.e2e.browser import Console, launch_chromium
from tests.e2e.conftest import Server

VIEWPORTS = {"phone": {"width": 390, "height": 844}, "laptop": {"width": 1280, "height": 800}}


@dataclass(frozen=True)
class Page:
    """A page and the controls a user must be able to reach on it (accessible role, name)."""

    name: str
    path: str
    controls: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class World:
    server: Server
    record_id: int
    provider_id: int
    run_id: int
    shots: Path


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    yield from launch_chromium()


@pytest.fixture(scope="module")
def shots() -> Path:
    chosen = os.environ.get("PCM_SCREENSHOTS")
    where = Path(chosen) if chosen else Path(tempfile.mkdtemp(prefix="pcm-console-shots-"))
    where.mkdir(parents=True, exist_ok=True)
    print(f"\nconsole screenshots: {where}")
    return where


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, moto_url: str, shots: Path) -> Iterator[World]:
    emulator = fresh_emulator(moto_url)
    tmp = tmp_path_factory.mktemp("console-layout")
    with Server.running(tmp, {"PCM_AWS_ENDPOINT_URL": emulator.url}) as server:
        with server.client() as c:
            made = c.post(
                "/api/providers",
                json={
                    "name": "production-eu",
                    "account_id": ACCOUNT,
                    "default_region": "eu-west-1",
                    "regions": ["eu-west-1", "us-east-1", "ap-southeast-2"],
                    "enabled": True,
                    "description": "the production account, scanned in three regions",
                },
            )
            assert made.status_code == 201, made.text
            provider_id = made.json()["id"]
            stored = c.put(f"/api/aws/credentials/{provider_id}", json=emulator.admin.body())
            assert stored.status_code == 200, stored.text
            run = c.post("/api/aws/tools/whoami/runs", json={"provider_id": provider_id})
            assert run.status_code in (200, 201), run.text
            for name in ("thread_safe_sessions", "atomic_session_updates"):
                toggled = c.post(
                    "/api/feature-flags/toggle",
                    json={"flag_name": name, "enabled": False, "reason": f"layout: {name}"},
                )
                assert toggled.status_code == 200, toggled.text
            c.post("/api/feature-flags/toggle", json={"flag_name": name, "enabled": True})
            c.post("/api/users", json={"username": "olga", "role": "operator"})
            c.post("/api/tokens", json={"name": "grafana-dashboards", "role": "viewer"})
            rollback = c.post(
                "/api/feature-flags/emergency-rollback",
                json={"reason": "p95 latency doubled after the 11:40 deploy"},
            )
            assert rollback.status_code == 200, rollback.text
            for name in ("csrf_tokens_enabled", "xss_protection_enabled"):  # back on, with CSP
                c.post("/api/feature-flags/toggle", json={"flag_name": name, "enabled": True})
        yield World(server, rollback.json()["record_id"], provider_id, run.json()["id"], shots)


def pages(world: World) -> list[Page]:
    rec, pid, run = world.record_id, world.provider_id, world.run_id
    return [
        Page("dashboard", "/", [("link", "Emergency rollback…"), ("button", "Acknowledge")]),
        Page(
            "flags",
            "/flags",
            [
                ("switch", "thread_safe_sessions"),
                ("switch", "postgresql_support"),
                ("button", "Roll back xss_protection_enabled"),
            ],
        ),
        Page("history", "/history", [("button", "Filter")]),
        Page("timeline", "/timeline", [("link", "24 h")]),
        Page(
            "record",
            f"/records/{rec}",
            [("button", "Copy message"), ("button", f"Acknowledge record #{rec}")],
        ),
        Page("emergency", "/rollback/emergency", [("button", "Roll back everything")]),
        Page(
            "providers",
            "/providers",
            [("link", "Add a provider"), ("link", "Edit production-eu")],
        ),
        Page("provider-form", f"/providers/{pid}/edit", [("button", "Save")]),
        Page(
            "credentials",
            "/credentials",
            [("button", "Store credentials for production-eu")],
        ),
        Page("tools", "/tools", [("link", "Who am I")]),
        Page("tool", "/tools/whoami", [("button", "Run whoami")]),
        Page("run", f"/tools/runs/{run}", [("link", "Download CSV")]),
        Page("users", "/admin/users", [("button", "Disable olga"), ("button", "Add user")]),
        Page(
            "tokens",
            "/admin/tokens",
            [("button", "Revoke token grafana-dashboards"), ("button", "Create token")],
        ),
        Page("whoami", "/whoami", []),
    ]


NAV = ["Dashboard", "Flags", "History", "Timeline", "Providers", "Credentials", "AWS tools"]
NAV_ADMIN = [*NAV, "Users", "Tokens"]


def overflow(tab: Console) -> dict[str, Any]:
    """The page's width against the viewport's, and the widest elements sticking out."""
    result: dict[str, Any] = tab.page.evaluate(
        """() => {
          const width = window.innerWidth;
          const wide = [...document.querySelectorAll('body *')]
            .filter(e => e.getBoundingClientRect().right > width + 1
                      && !e.closest('.table-wrap'))
            .slice(0, 5)
            .map(e => `${e.tagName.toLowerCase()}${e.id ? '#' + e.id : ''}` +
                      `${e.className && typeof e.className === 'string' ? '.' + e.className : ''}` +
                      ` right=${Math.round(e.getBoundingClientRect().right)}`);
          return {scroll: document.documentElement.scrollWidth, inner: width, wide};
        }"""
    )
    return result


def outside(tab: Console, role: str, name: str) -> str | None:
    """Why the control is not usable within the viewport's width, or None when it is."""
    found = tab.page.get_by_role(role, name=name, exact=True)  # type: ignore[arg-type]
    if found.count() == 0:
        return f"{role} {name!r} not on the page"
    control = found.first
    if not control.is_visible():
        return f"{role} {name!r} hidden"
    control.scroll_into_view_if_needed()
    box = control.bounding_box()
    width = tab.page.evaluate("window.innerWidth")
    if box is None or box["x"] < 0 or box["x"] + box["width"] > width + 1:
        return f"{role} {name!r} outside the viewport ({box}, width {width})"
    return None


@pytest.fixture(scope="module")
def tabs(browser: Any, world: World) -> Iterator[dict[str, Console]]:
    """One signed-in admin tab per viewport."""
    made = {}
    for label, size in VIEWPORTS.items():
        tab = Console(browser, world.server, label, shots=world.shots, viewport=size)
        tab.sign_in()
        made[label] = tab
    yield made
    for tab in made.values():
        tab.context.close()


PAGE_NAMES = [
    "dashboard",
    "flags",
    "history",
    "timeline",
    "record",
    "emergency",
    "providers",
    "provider-form",
    "credentials",
    "tools",
    "tool",
    "run",
    "users",
    "tokens",
    "whoami",
]


@pytest.mark.parametrize("viewport", list(VIEWPORTS))
@pytest.mark.parametrize("name", PAGE_NAMES)
def test_page_fits_the_viewport(
    tabs: dict[str, Console], world: World, viewport: str, name: str
) -> None:
    # Given a signed-in admin on a phone or a laptop
    target = next(p for p in pages(world) if p.name == name)
    tab = tabs[viewport]
    tab.problems.clear()
    # When the page is opened
    response = tab.page.goto(target.path)
    assert response is not None and response.status == 200, target.path
    tab.shot(name)
    # Then it does not scroll sideways, and every control it exists for is within reach
    measured = overflow(tab)
    assert measured["scroll"] <= measured["inner"], f"{target.path} scrolls sideways: {measured}"
    nav = tab.page.get_by_role("navigation", name="Main")
    missing = [
        why
        for link in NAV_ADMIN
        if (why := outside_in(tab, nav.get_by_role("link", name=link, exact=True), link))
    ]
    missing += [why for role, label in target.controls if (why := outside(tab, role, label))]
    missing += [why for why in [outside(tab, "button", "Sign out")] if why is not None]
    assert not missing, f"{target.path}: {missing}"
    assert tab.problems == [], tab.problems


def outside_in(tab: Console, locator: Any, label: str) -> str | None:
    if locator.count() == 0:
        return f"nav link {label!r} missing"
    box = locator.first.bounding_box()
    width = tab.page.evaluate("window.innerWidth")
    if box is None or box["x"] < 0 or box["x"] + box["width"] > width + 1:
        return f"nav link {label!r} outside the viewport ({box})"
    return None


def test_every_nav_page_is_walked(tabs: dict[str, Console], world: World) -> None:
    """The walk above covers every page the navigation links to (a new nav entry fails here)."""
    tab = tabs["laptop"]
    tab.page.goto("/")
    hrefs = tab.page.eval_on_selector_all(
        "nav[aria-label=Main] a", "links => links.map(a => a.getAttribute('href'))"
    )
    walked = {p.path for p in pages(world)}
    assert set(hrefs) <= walked, set(hrefs) - walked


def test_sign_in_page_fits_a_phone(browser: Any, world: World) -> None:
    tab = Console(
        browser, world.server, "phone-anon", shots=world.shots, viewport=VIEWPORTS["phone"]
    )
    tab.page.goto("/login")
    measured = overflow(tab)
    assert measured["scroll"] <= measured["inner"], measured
    assert outside(tab, "button", "Sign in") is None
    assert httpx.get(f"{world.server.url}/api/health").status_code == 200
    tab.context.close()
