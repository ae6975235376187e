"""/api/tokens: API tokens (admin only); the secret is returned once, at creation."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, status
from pydantic import BaseModel, Field

from backend.api.deps import Admin, RoleName, RowId, SessionsDep, body_doc, json_body
from backend.api.responses import AUTHENTICATED, BODY, NOT_FOUND
from backend.security.tokens import create_token, list_tokens, revoke_token, token_out
from backend.security.users import check_role

router = APIRouter(prefix="/api/tokens", tags=["tokens"], responses=AUTHENTICATED)


class TokenCreate(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    role: RoleName = Field(description="viewer, operator or admin")


@router.get("", summary="Every token (never the secrets)")
def tokens(_: Admin, sessions: SessionsDep) -> dict[str, Any]:
    with sessions() as s:
        items = [token_out(t) for t in list_tokens(s)]
    return {"total": len(items), "items": items}


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Create a token; its secret is in the answer, once",
    responses=BODY,
    openapi_extra=body_doc(TokenCreate),
)
def create(
    _: Admin,
    sessions: SessionsDep,
    body: Annotated[TokenCreate, Depends(json_body(TokenCreate))],
) -> dict[str, Any]:
    role = check_role(body.role)
    with sessions.begin() as s:
        row, plaintext = create_token(s, name=body.name, role=role)
        out = token_out(row)
    return {**out, "token": plaintext}


@router.delete(
    "/{token_id}", summary="Revoke a token (it stops working at once)", responses=NOT_FOUND
)
def revoke(token_id: RowId, _: Admin, sessions: SessionsDep) -> dict[str, Any]:
    with sessions.begin() as s:
        return token_out(revoke_token(s, token_id=token_id))
