"""/api/users: local users (admin only)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, status
from pydantic import BaseModel, Field

from backend.api.deps import Admin, RoleName, SessionsDep, body_doc, json_body
from backend.api.responses import AUTHENTICATED, BODY, CONFLICT, NOT_FOUND
from backend.security import users
from backend.security.passwords import MIN_LENGTH

router = APIRouter(prefix="/api/users", tags=["users"], responses=AUTHENTICATED)
Username = Annotated[str, Path(max_length=64)]


class UserCreate(BaseModel):
    # The service checks these (with its own messages); the schema documents them.
    username: str = Field(
        min_length=1, max_length=64, json_schema_extra={"pattern": users.USERNAME.pattern}
    )
    role: RoleName = Field(description="viewer, operator or admin")
    password: str | None = Field(
        default=None,
        max_length=1024,
        description="omitted: one is generated and returned once",
        json_schema_extra={"minLength": MIN_LENGTH},
    )


class UserChange(BaseModel):
    role: RoleName | None = None
    disabled: bool | None = None
    password: str | None = Field(
        default=None, max_length=1024, json_schema_extra={"minLength": MIN_LENGTH}
    )


@router.get("", summary="Every user")
def list_users(_: Admin, sessions: SessionsDep) -> dict[str, Any]:
    with sessions() as s:
        items = [users.user_out(u) for u in users.list_users(s)]
    return {"total": len(items), "items": items}


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Add a user",
    responses={**CONFLICT, **BODY},
    openapi_extra=body_doc(UserCreate),
)
def create_user(
    _: Admin,
    sessions: SessionsDep,
    body: Annotated[UserCreate, Depends(json_body(UserCreate))],
) -> dict[str, Any]:
    password = body.password or users.generate_password()
    with sessions.begin() as s:
        user = users.create_user(s, username=body.username, password=password, role=body.role)
        out = users.user_out(user)
    if body.password is None:
        out["password"] = password  # shown once
    return out


@router.patch(
    "/{username}",
    responses={**NOT_FOUND, **CONFLICT, **BODY},
    summary="Change a user's role, password or disabled state (ends sessions)",
    openapi_extra=body_doc(UserChange),
)
def change_user(
    username: Username,
    _: Admin,
    sessions: SessionsDep,
    body: Annotated[UserChange, Depends(json_body(UserChange))],
) -> dict[str, Any]:
    with sessions.begin() as s:
        user = users.get_user(s, username=username)
        if body.role is not None:
            users.set_role(s, username=username, role=body.role)
        if body.password is not None:
            users.set_password(s, username=username, password=body.password)
        if body.disabled is not None:
            users.set_disabled(s, username=username, disabled=body.disabled)
        return users.user_out(user)
