"""405 answers name every method the path supports in `Allow`, not only the methods of the first
route whose path matched (several routes often share a path: GET and POST /api/users)."""

from __future__ import annotations

from fastapi import Request, Response
from starlette.exceptions import HTTPException
from starlette.routing import Match

from backend.api import errors

_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


def allowed_methods(request: Request) -> list[str]:
    """The methods some route answers at this request's path (routers nest, so each method is
    tried against the whole routing table rather than read off route objects)."""
    allowed = []
    for method in _METHODS:
        scope = {**request.scope, "method": method}
        if any(route.matches(scope)[0] == Match.FULL for route in request.app.router.routes):
            allowed.append(method)
    return allowed


async def method_not_allowed(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    allowed = allowed_methods(request)
    if allowed:
        exc.headers = {**(exc.headers or {}), "Allow": ", ".join(allowed)}
    return await errors.http_error(request, exc)
