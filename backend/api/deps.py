"""Typed dependencies shared by the routers: database session, flag runtime, caller, roles."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Annotated

from fastapi import Depends, HTTPException, Query, Request, status
from sqlalchemy.orm import Session, sessionmaker

from backend.core.config import Settings
from backend.flags import FlagRuntime
from backend.security.tokens import Principal, Role, authenticate_token


def get_settings_dep(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_runtime(request: Request) -> FlagRuntime:
    runtime: FlagRuntime = request.app.state.runtime
    return runtime


def get_sessions(request: Request) -> sessionmaker[Session]:
    sessions: sessionmaker[Session] = request.app.state.sessions
    return sessions


def get_db(sessions: Annotated[sessionmaker[Session], Depends(get_sessions)]) -> Iterator[Session]:
    with sessions() as session:
        yield session


# Integers past 2**63 - 1 fail in the database driver (a 500); refuse them as bad input.
MAX_DB_INT = 2**63 - 1
Offset = Annotated[int, Query(ge=0, le=MAX_DB_INT)]

SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
RuntimeDep = Annotated[FlagRuntime, Depends(get_runtime)]
SessionsDep = Annotated[sessionmaker[Session], Depends(get_sessions)]
DbDep = Annotated[Session, Depends(get_db)]

_UNAUTHORIZED = HTTPException(
    status_code=status.HTTP_401_UNAUTHORIZED,
    detail="authentication required: send 'Authorization: Bearer <token>' "
    "(the admin token is in data/admin_token)",
    headers={"WWW-Authenticate": "Bearer"},
)


def current_principal(request: Request, sessions: SessionsDep) -> Principal:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise _UNAUTHORIZED
    with sessions.begin() as s:
        principal = authenticate_token(s, token.strip())
    if principal is None:
        raise HTTPException(
            status_code=status.HTTP_401_UNAUTHORIZED,
            detail="invalid or revoked API token",
            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
        )
    request.state.principal = principal
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


Viewer = Annotated[Principal, Depends(require(Role.VIEWER))]
Operator = Annotated[Principal, Depends(require(Role.OPERATOR))]
Admin = Annotated[Principal, Depends(require(Role.ADMIN))]
