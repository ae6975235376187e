"""/login, /logout, /whoami: the server-rendered sign-in pages (Jinja2, always autoescaped)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select

from backend.api.auth import do_sign_in
from backend.api.deps import (
    KeyRingDep,
    MaybePrincipal,
    SessionsDep,
    SessionStoreDep,
    SettingsDep,
    Viewer,
    clear_session_cookie,
    set_session_cookie,
)
from backend.aws.models import Provider
from backend.security.errors import LoginThrottled
from backend.security.signin import INVALID_CREDENTIALS
from backend.web.templating import page

router = APIRouter(tags=["pages"], include_in_schema=False)


def safe_next(target: str | None) -> str:
    """Where to go after sign-in: a path on this site only (no open redirect)."""
    if target and target.startswith("/") and not target.startswith(("//", "/\\")):
        return target
    return "/"


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, next: str | None = None) -> HTMLResponse:
    return page(request, "auth/login.html", username="", error=None, next=safe_next(next))


@router.post("/login", response_class=HTMLResponse)
async def login_form(
    request: Request,
    username: Annotated[str, Form(max_length=200)],
    password: Annotated[str, Form(max_length=1024)],
    store: SessionStoreDep,
    sessions: SessionsDep,
    settings: SettingsDep,
    keyring: KeyRingDep,
    next: Annotated[str | None, Form(max_length=2000)] = None,
) -> Response:
    try:
        signed = await do_sign_in(
            request, username=username, password=password, store=store, sessions=sessions
        )
    except LoginThrottled as exc:
        response = page(
            request, "auth/login.html", 429, username=username, error=str(exc), next=safe_next(next)
        )
        response.headers["Retry-After"] = str(exc.retry_after)
        return response
    if signed is None:
        return page(
            request,
            "auth/login.html",
            401,
            username=username,
            error=INVALID_CREDENTIALS,
            next=safe_next(next),
        )
    redirect = RedirectResponse(safe_next(next), status_code=303)
    set_session_cookie(request, redirect, signed.session_id, settings=settings, keyring=keyring)
    return redirect


@router.post("/logout")
def logout_form(
    request: Request, who: Viewer, store: SessionStoreDep, settings: SettingsDep
) -> Response:
    if who.session_id is not None:
        store.delete(who.session_id)
    response = RedirectResponse("/login", status_code=303)
    clear_session_cookie(request, response, settings)
    return response


@router.get("/whoami", response_class=HTMLResponse)
def whoami(request: Request, who: MaybePrincipal, sessions: SessionsDep) -> Response:
    if who is None:
        return RedirectResponse("/login", status_code=303)
    with sessions() as s:
        providers = list(s.scalars(select(Provider).order_by(Provider.name)))
    return page(request, "auth/whoami.html", who=who, providers=providers)
