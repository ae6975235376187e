"""The API's documentation (/docs: Swagger UI, /redoc: ReDoc, /openapi.json) for signed-in
callers only, working offline and under the strict CSP: the assets come from the installed
fastapi-offline package instead of a CDN, and the pages start them from an external script
(static/api-docs.js) loaded with the response's nonce, never from inline script."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from backend.api.deps import Viewer
from backend.web.access import PageViewer
from backend.web.templating import TEMPLATES

ASSETS_URL = "/docs/assets"
OPENAPI_URL = "/openapi.json"

router = APIRouter(include_in_schema=False)


def assets_dir() -> Path:
    """Swagger UI's and ReDoc's files, as the package ships them."""
    return Path(str(files("fastapi_offline") / "static"))


@router.get(OPENAPI_URL)
def openapi(request: Request, _: Viewer) -> JSONResponse:
    schema: dict[str, Any] = request.app.openapi()
    return JSONResponse(schema)


def _page(request: Request, viewer: str) -> HTMLResponse:
    response = TEMPLATES.TemplateResponse(
        request,
        "api_docs.html",
        {
            "viewer": viewer,
            "assets": ASSETS_URL,
            "openapi_url": OPENAPI_URL,
            "title": request.app.title,
            "csrf_token": getattr(request.state, "csrf_token", None) or "",
        },
    )
    response.headers["Cache-Control"] = "no-store"
    return response


@router.get("/docs", response_class=HTMLResponse)
def swagger_ui(request: Request, _: PageViewer) -> HTMLResponse:
    return _page(request, "swagger")


@router.get("/redoc", response_class=HTMLResponse)
def redoc(request: Request, _: PageViewer) -> HTMLResponse:
    return _page(request, "redoc")


def install(app: FastAPI) -> None:
    """Serve the pages and their assets (create the app with docs_url, redoc_url and
    openapi_url set to None, so that FastAPI's public, CDN-based ones are not there)."""
    app.mount(ASSETS_URL, StaticFiles(directory=assets_dir()), name="docs_assets")
    app.include_router(router)
