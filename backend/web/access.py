"""Who may see a page: signed-in callers of a role; everyone else is sent to the sign-in page."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated
from urllib.parse import quote

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import RedirectResponse, Response

from backend.api.deps import MaybePrincipal
from backend.security.tokens import Principal, Role


class LoginRequired(Exception):
    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


def page_user(role: Role) -> Callable[..., Awaitable[Principal]]:
    async def check(request: Request, who: MaybePrincipal) -> Principal:
        if who is None:
            raise LoginRequired(request.url.path)
        if not who.can(role):
            raise HTTPException(403, f"this page needs the {role} role; you have {who.role}")
        return who

    return check


async def _to_login(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, LoginRequired)
    return RedirectResponse(f"/login?next={quote(exc.next_path)}", status_code=303)


def install(app: FastAPI) -> None:
    app.add_exception_handler(LoginRequired, _to_login)


PageViewer = Annotated[Principal, Depends(page_user(Role.VIEWER))]
PageOperator = Annotated[Principal, Depends(page_user(Role.OPERATOR))]
PageAdmin = Annotated[Principal, Depends(page_user(Role.ADMIN))]
