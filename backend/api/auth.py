"""/api/auth: sign-in, sign-out and "who am I" over JSON (HTML forms: backend/web/signin_pages)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request, Response, status
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from backend.api.deps import (
    KeyRingDep,
    SessionsDep,
    SessionStoreDep,
    SettingsDep,
    Viewer,
    body_doc,
    clear_session_cookie,
    cookie_session_id,
    json_body,
    set_session_cookie,
)
from backend.api.responses import AUTHENTICATED, BODY, errors
from backend.security.signin import INVALID_CREDENTIALS, SignedIn, sign_in
from backend.security.throttle import Throttle
from backend.security.tokens import Principal

router = APIRouter(prefix="/api/auth", tags=["auth"], responses=AUTHENTICATED)


class LoginRequest(BaseModel):
    username: str = Field(min_length=1, max_length=200)
    password: str = Field(min_length=1, max_length=1024)


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def throttle_of(request: Request) -> Throttle:
    throttle: Throttle = request.app.state.throttle
    return throttle


async def do_sign_in(
    request: Request, *, username: str, password: str, store: Any, sessions: Any
) -> SignedIn | None:
    return await run_in_threadpool(
        lambda: sign_in(
            sessions=sessions,
            store=store,
            throttle=throttle_of(request),
            username=username,
            password=password,
            address=client_address(request),
            previous_session_id=cookie_session_id(request),
        )
    )


def me_out(who: Principal, request: Request) -> dict[str, Any]:
    return {
        "name": who.name,
        "role": str(who.role),
        "kind": who.kind,
        "user_id": who.user_id,
        "csrf_token": request.state.csrf_token if who.kind == "session" else None,
    }


@router.post(
    "/login",
    summary="Sign in; sets the session cookie",
    openapi_extra=body_doc(LoginRequest),
    responses=errors(413, 429),
)
async def login(
    request: Request,
    response: Response,
    body: Annotated[LoginRequest, Depends(json_body(LoginRequest))],
    store: SessionStoreDep,
    sessions: SessionsDep,
    settings: SettingsDep,
    keyring: KeyRingDep,
) -> dict[str, Any]:
    signed = await do_sign_in(
        request, username=body.username, password=body.password, store=store, sessions=sessions
    )
    if signed is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, INVALID_CREDENTIALS)
    set_session_cookie(request, response, signed.session_id, settings=settings, keyring=keyring)
    return {
        "name": f"user:{signed.username}",
        "role": signed.role,
        "kind": "session",
        "csrf_token": signed.csrf_token,
        "idle_timeout_seconds": settings.session_idle_timeout,
        "absolute_timeout_seconds": settings.session_absolute_timeout,
    }


@router.post("/logout", summary="End the session (cookie callers); tokens are revoked instead")
def logout(
    request: Request,
    response: Response,
    who: Viewer,
    store: SessionStoreDep,
    settings: SettingsDep,
) -> dict[str, Any]:
    if who.session_id is None:
        return {"signed_out": False, "detail": "bearer tokens are revoked, not signed out"}
    store.delete(who.session_id)
    clear_session_cookie(request, response, settings)
    return {"signed_out": True}


@router.get("/me", summary="The caller: name, role, and the session's CSRF token")
def me(request: Request, who: Viewer) -> dict[str, Any]:
    return me_out(who, request)


class PreferenceSet(BaseModel):
    key: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    value: str | int | bool | None = None


PREFERENCES = "preferences"
MAX_PREFERENCES = 200


@router.get("/preferences", summary="The session's UI preferences")
def preferences(who: Viewer, store: SessionStoreDep) -> dict[str, Any]:
    if who.session_id is None:
        return {}
    prefs: dict[str, Any] = store.read(who.session_id).get(PREFERENCES, {})
    return prefs


@router.post(
    "/preferences",
    responses=BODY,
    summary="Set one UI preference in the session (a session update, see SessionStore.update)",
    openapi_extra=body_doc(PreferenceSet),
)
def set_preference(
    who: Viewer,
    store: SessionStoreDep,
    body: Annotated[PreferenceSet, Depends(json_body(PreferenceSet))],
) -> dict[str, Any]:
    if who.session_id is None:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            "preferences belong to a signed-in session; API tokens have none",
        )

    def put(data: dict[str, Any]) -> None:
        prefs = dict(data.get(PREFERENCES, {}))
        if body.key not in prefs and len(prefs) >= MAX_PREFERENCES:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "too many preferences")
        prefs[body.key] = body.value
        data[PREFERENCES] = prefs  # one assignment: written whole even by legacy updates

    data = store.update(who.session_id, put)
    return dict(data.get(PREFERENCES, {}))
