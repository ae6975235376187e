"""The web console: server-rendered pages (Jinja2) and small vendored static files."""

from __future__ import annotations

from http import HTTPStatus
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.staticfiles import StaticFiles

from backend.web import (
    access,
    admin_pages,
    api_docs,
    credential_pages,
    dashboard,
    flag_pages,
    history,
    provider_pages,
    rollback_banner,
    signin_pages,
    timeline,
    tool_pages,
)
from backend.web.templating import page

STATIC_DIR = Path(__file__).resolve().parent / "static"


def error_page(request: Request, status: int, detail: str) -> HTMLResponse:
    """What a browser sees instead of a JSON error on a console page."""
    return page(
        request,
        "error.html",
        status,
        status=status,
        title=HTTPStatus(status).phrase,
        detail=detail,
        request_id=getattr(request.state, "request_id", None),
    )


def install(app: FastAPI) -> None:
    """Mount the console's pages and static files on `app`."""
    access.install(app)
    app.state.render_error_page = error_page
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    api_docs.install(app)
    for module in (
        signin_pages,
        dashboard,
        flag_pages,
        history,
        timeline,
        rollback_banner,
        provider_pages,
        credential_pages,
        tool_pages,
        admin_pages,
    ):
        app.include_router(module.router)

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon() -> FileResponse:
        return FileResponse(STATIC_DIR / "favicon.svg", media_type="image/svg+xml")
