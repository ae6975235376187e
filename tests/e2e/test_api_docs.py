"""/docs and /redoc in a real browser with no internet: signed in, they render the API's
operations from assets the server itself serves, under the strict CSP (a CSP violation or a
script error fails the test); signed out, they and /openapi.json are closed."""

from __future__ import annotations

from urllib.parse import urlsplit

import httpx

from tests.e2e.browser import Console
from tests.e2e.conftest import Server
from tests.e2e.test_browser import SHOTS, browser

__all__ = ["browser"]


def offline(ui: Console) -> list[str]:
    """Abort every request that leaves the machine, as with no internet; return their URLs."""
    outside: list[str] = []

    def route(r: object) -> None:
        url = r.request.url  # type: ignore[attr-defined]
        if urlsplit(url).hostname in ("127.0.0.1", "localhost"):
            r.continue_()  # type: ignore[attr-defined]
        else:
            outside.append(url)
            r.abort()  # type: ignore[attr-defined]

    ui.context.route("**/*", route)
    return outside


def test_docs__signed_in_and_offline__list_the_operations(browser: object, server: Server) -> None:
    # Given a signed-in browser with no way out to the internet
    ui = Console(browser, server, "api-docs", shots=SHOTS)
    outside = offline(ui)
    ui.sign_in()
    page = ui.page

    # When it opens /docs, Then Swagger UI lists the operations, the rollback among them
    page.goto("/docs")
    rollback = page.locator(
        ".opblock-summary-path", has_text="/api/feature-flags/emergency-rollback"
    )
    rollback.first.wait_for(state="visible", timeout=30_000)
    assert page.locator(".opblock").count() >= 20
    policy = page.context.request.get("/docs").headers["content-security-policy"]
    assert "'strict-dynamic'" in policy and "unsafe-inline" not in policy
    ui.shot("swagger")

    # And /redoc does the same with ReDoc
    page.goto("/redoc")
    page.get_by_role("heading", name="Application health (public)").wait_for(timeout=30_000)
    assert page.get_by_text("feature flags").first.is_visible()
    ui.shot("redoc")
    # ReDoc's footer logo is hard-coded to its CDN: the CSP blocks it and ReDoc hides it.
    problems = [p for p in ui.problems if "https://cdn.redoc.ly/redoc/logo-mini.svg" not in p]
    assert problems == [], problems
    assert outside == [], outside
    ui.context.close()


def test_docs__signed_out__closed(server: Server) -> None:
    with httpx.Client(base_url=server.url, timeout=10) as anon:
        for path in ("/docs", "/redoc"):
            answer = anon.get(path)
            assert answer.status_code == 303
            assert answer.headers["location"].startswith("/login")
        assert anon.get("/openapi.json").status_code == 401
    with server.client() as admin:
        schema = admin.get("/openapi.json").json()
        assert "/api/feature-flags/emergency-rollback" in schema["paths"]
