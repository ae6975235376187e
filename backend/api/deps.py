"""Typed dependencies shared by the routers: database session, flag runtime, caller, roles,
and request bodies whose strictness follows `pydantic_v2_schemas`.

A caller is a Principal from either a bearer token (`Authorization: Bearer …`) or the session
cookie. While the database is unreachable, only bearer tokens work (degraded: see
`degraded_principal`); cookie sessions get the database's 503. Session callers'
state-changing requests also pass the CSRF check when `csrf_tokens_enabled` is on;
`request.state.session_id` and `request.state.csrf_token` are set for them (None for token
callers).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterator
from typing import Annotated, Any, TypeVar

from fastapi import Depends, HTTPException, Path, Query, Request, Response, status
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, ValidationError, WithJsonSchema
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from backend.core.config import Settings
from backend.db.base import MAX_ROW_ID
from backend.flags import FlagRuntime, store_busy
from backend.security import csrf
from backend.security.flag import enabled
from backend.security.keys import LEGACY_COOKIE, KeyRing
from backend.security.sessions import LoadedSession, SessionStore
from backend.security.tokens import (
    Principal,
    Role,
    TokenMemory,
    admin_file_principal,
    authenticate_token,
)

SESSION_COOKIE = "pcm_session"
log = logging.getLogger("pcm_ops_tools.auth")
M = TypeVar("M", bound=BaseModel)


def get_settings_dep(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_runtime(request: Request) -> FlagRuntime:
    runtime: FlagRuntime = request.app.state.runtime
    return runtime


def get_sessions(request: Request) -> sessionmaker[Session]:
    sessions: sessionmaker[Session] = request.app.state.sessions
    return sessions


def get_session_store(request: Request) -> SessionStore:
    store: SessionStore = request.app.state.session_store
    return store


def get_keyring(request: Request) -> KeyRing:
    keyring: KeyRing = request.app.state.keyring
    return keyring


def get_db(sessions: Annotated[sessionmaker[Session], Depends(get_sessions)]) -> Iterator[Session]:
    with sessions() as session:
        yield session


# Integers past 2**63 - 1 fail in the database driver (a 500); refuse them as bad input (422).
# Every integer that reaches a query comes through one of these types. The bound is the largest
# id either database holds (PostgreSQL's INTEGER); JSON clients hold it exactly too.
MAX_DB_INT = MAX_ROW_ID
Offset = Annotated[int, Query(ge=0, le=MAX_DB_INT)]
RowId = Annotated[int, Path(ge=1, le=MAX_DB_INT)]
RowIdQuery = Annotated[int | None, Query(ge=1, le=MAX_DB_INT)]

# A role name, documented with its values (checked, with a clear message, by the service).
RoleName = Annotated[str, WithJsonSchema({"type": "string", "enum": [r.value for r in Role]})]

SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
RuntimeDep = Annotated[FlagRuntime, Depends(get_runtime)]
SessionsDep = Annotated[sessionmaker[Session], Depends(get_sessions)]
SessionStoreDep = Annotated[SessionStore, Depends(get_session_store)]
KeyRingDep = Annotated[KeyRing, Depends(get_keyring)]
DbDep = Annotated[Session, Depends(get_db)]

_UNAUTHORIZED = HTTPException(
    status_code=status.HTTP_401_UNAUTHORIZED,
    detail="authentication required: sign in (POST /api/auth/login, or the /login page) "
    "or send 'Authorization: Bearer <token>' (the admin token is in data/admin_token)",
    headers={"WWW-Authenticate": "Bearer"},
)


# -- the session cookie ------------------------------------------------------------------------
def cookie_is_secure(request: Request, settings: Settings) -> bool:
    if settings.cookie_secure == "auto":
        return request.url.scheme == "https"
    return settings.cookie_secure == "true"


def set_session_cookie(
    request: Request, response: Response, session_id: str, *, settings: Settings, keyring: KeyRing
) -> None:
    """The signed session id: HttpOnly, SameSite=Lax, Secure over HTTPS."""
    response.set_cookie(
        SESSION_COOKIE,
        keyring.sign(session_id, new_handling=enabled("new_secret_key_handling")),
        max_age=int(settings.session_absolute_timeout),
        path="/",
        httponly=True,
        samesite="lax",
        secure=cookie_is_secure(request, settings),
    )


def clear_session_cookie(request: Request, response: Response, settings: Settings) -> None:
    response.delete_cookie(
        SESSION_COOKIE,
        path="/",
        httponly=True,
        samesite="lax",
        secure=cookie_is_secure(request, settings),
    )


def session_from_cookie(request: Request) -> tuple[LoadedSession, bool] | None:
    """The live session named by the cookie and whether it was signed with the current key."""
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie or len(cookie) > 512:
        return None
    keyring: KeyRing = request.app.state.keyring
    store: SessionStore = request.app.state.session_store
    new_handling = enabled("new_secret_key_handling")
    unsigned = keyring.unsign(cookie, new_handling=new_handling)
    if unsigned is None:
        legacy_id = keyring.unsign_legacy(cookie) if new_handling else None
        if legacy_id is None:
            return None
        # Well-known key: believed only for a session this server gave a legacy cookie, so
        # that the switch logs nobody out (see backend/security/keys.py).
        loaded = store.load(legacy_id)
        if loaded is None or not loaded.data.get(LEGACY_COOKIE):
            return None
        return loaded, False
    session_id, current_key = unsigned
    loaded = store.load(session_id)
    if loaded is None:
        return None
    if new_handling and current_key and loaded.data.get(LEGACY_COOKIE):
        # The browser holds the re-signed cookie: its legacy one is refused from now on.
        store.update(session_id, lambda data: data.pop(LEGACY_COOKIE, None))
    elif not new_handling and not loaded.data.get(LEGACY_COOKIE):
        store.update(session_id, lambda data: data.__setitem__(LEGACY_COOKIE, True))
    return loaded, current_key


def cookie_session_id(request: Request) -> str | None:
    """The session id the cookie names, if its signature is valid (the session may be gone)."""
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie or len(cookie) > 512:
        return None
    keyring: KeyRing = request.app.state.keyring
    unsigned = keyring.unsign(cookie, new_handling=enabled("new_secret_key_handling"))
    return unsigned[0] if unsigned else None


async def _csrf_check(request: Request, loaded: LoadedSession) -> None:
    if not csrf.needs_check(request.method) or not enabled("csrf_tokens_enabled"):
        return
    submitted = request.headers.get(csrf.HEADER)
    content_type = request.headers.get("content-type", "")
    if not submitted and content_type.startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        value = (await request.form()).get(csrf.FIELD)
        submitted = value if isinstance(value, str) else None
    csrf.verify(loaded.data, submitted)


# -- the caller --------------------------------------------------------------------------------
def token_memory(request: Request) -> TokenMemory:
    """This worker's memory of recently verified tokens (made on first use)."""
    memory: TokenMemory | None = getattr(request.app.state, "token_memory", None)
    if memory is None:
        memory = request.app.state.token_memory = TokenMemory()
    return memory


def degraded_principal(request: Request, token: str, cause: DBAPIError) -> Principal:
    """With the database unreachable, a bearer token is accepted only if this worker verified it
    recently or it is the local admin token file's (0600); anything else gets the 503."""
    settings: Settings = request.app.state.settings
    principal = token_memory(request).recall(token)
    how = "a token this worker verified recently"
    if principal is None:
        principal = admin_file_principal(settings.admin_token_path, token)
        how = f"the admin token file {settings.admin_token_path}"
    if principal is None:
        raise cause
    log.warning(
        "authentication ran degraded (database %s: %s): accepted %s as %s",
        "busy" if store_busy(cause) else "unreachable",
        str(cause).splitlines()[0],
        principal.name,
        how,
    )
    return principal


async def optional_principal(request: Request, response: Response) -> Principal | None:
    """The caller if any credential is presented; a bad bearer token is a 401."""
    request.state.session_id = None
    request.state.csrf_token = None
    header = request.headers.get("authorization")
    if header is not None:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise _UNAUTHORIZED
        sessions: sessionmaker[Session] = request.app.state.sessions

        def check_token() -> Principal | None:
            with sessions.begin() as s:
                return authenticate_token(s, token.strip())

        try:
            principal = await run_in_threadpool(check_token)
        except DBAPIError as exc:
            principal = degraded_principal(request, token.strip(), exc)
        else:
            if principal is None:
                token_memory(request).forget(token.strip())
            else:
                token_memory(request).remember(token.strip(), principal)
        if principal is None:
            raise HTTPException(
                status_code=status.HTTP_401_UNAUTHORIZED,
                detail="invalid or revoked API token",
                headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
            )
        request.state.principal = principal
        return principal
    found = await run_in_threadpool(session_from_cookie, request)
    if found is None:
        return None
    loaded, current_key = found
    request.state.session_id = loaded.session_id
    request.state.csrf_token = loaded.data.get(csrf.SESSION_KEY)
    await _csrf_check(request, loaded)
    if not current_key:
        # Signed with a fallback or the other mode's key: move the browser to the current one.
        set_session_cookie(
            request,
            response,
            loaded.session_id,
            settings=request.app.state.settings,
            keyring=request.app.state.keyring,
        )
    principal = Principal(
        name=f"user:{loaded.username}",
        role=Role(loaded.role),
        kind="session",
        user_id=loaded.user_id,
        session_id=loaded.session_id,
    )
    request.state.principal = principal
    return principal


async def current_principal(
    principal: Annotated[Principal | None, Depends(optional_principal)],
) -> Principal:
    if principal is None:
        raise _UNAUTHORIZED
    return principal


def require(role: Role) -> Callable[[Principal], Principal]:
    """A dependency that lets through callers of `role` or higher."""

    def check(principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
        if not principal.can(role):
            raise HTTPException(
                status_code=status.HTTP_403_FORBIDDEN,
                detail=f"this action needs the {role} role; you have {principal.role}",
            )
        return principal

    return check


MaybePrincipal = Annotated[Principal | None, Depends(optional_principal)]
Viewer = Annotated[Principal, Depends(require(Role.VIEWER))]
Operator = Annotated[Principal, Depends(require(Role.OPERATOR))]
Admin = Annotated[Principal, Depends(require(Role.ADMIN))]


# -- request bodies (pydantic_v2_schemas) ------------------------------------------------------
def strict_schemas(request: Request) -> bool:
    """The value `pydantic_v2_schemas` had when this process started (a restart flag)."""
    runtime: FlagRuntime = request.app.state.runtime
    return runtime.boot_values.get("pydantic_v2_schemas", True)


def strict_variant(model: type[M]) -> type[M]:
    """`model` refusing unknown fields and type coercion."""
    config = ConfigDict(extra="forbid", strict=True)
    return type(f"Strict{model.__name__}", (model,), {"model_config": config})


def json_body(model: type[M]) -> Callable[[Request], Awaitable[M]]:
    """A dependency parsing the JSON body as `model`: strict when `pydantic_v2_schemas` was on
    at start-up, lenient (extra fields ignored, "true"/1 accepted as booleans) otherwise."""
    strict_model = strict_variant(model)

    async def parse(request: Request) -> M:
        raw = await request.body()
        chosen = strict_model if strict_schemas(request) else model
        try:
            return chosen.model_validate_json(raw or b"null")
        except ValidationError as exc:
            errors: list[Any] = [
                {**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)
            ]
            raise RequestValidationError(errors) from None

    return parse


def body_doc(model: type[BaseModel]) -> dict[str, Any]:
    """`openapi_extra` documenting a body parsed by `json_body`."""
    # The strict variant: unknown fields are refused (pydantic_v2_schemas is on by default).
    schema = strict_variant(model).model_json_schema()
    schema["title"] = model.__name__
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}
