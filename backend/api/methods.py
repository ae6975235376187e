"""405 answers name every method the path supports in `Allow`, not only the methods of the first
route whose path matched (several routes often share a path: GET and POST /api/users)."""

from __future__ import annotations

from fastapi import Request, Response
from fastapi.routing import iter_route_contexts
from starlette.exceptions import HTTPException
from starlette.routing import compile_path

from backend.api import errors

_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


def allowed_methods(request: Request) -> list[str]:
    """The methods of the routes that own this request's path: a literal segment owns its path
    over a parameter (POST /api/feature-flags/toggle, not GET /api/feature-flags/{name})."""
    path = request.scope.get("path", "")
    owners: list[tuple[int, set[str]]] = []
    for context in iter_route_contexts(request.app.router.routes):
        template, methods = context.path, context.methods
        if not template or not methods:
            continue
        regex, _, params = compile_path(template)
        if regex.match(path):
            owners.append((len(params), methods))
    fewest = min((params for params, _ in owners), default=0)
    allowed = set().union(*(methods for params, methods in owners if params == fewest))
    return [method for method in _METHODS if method in allowed]


async def method_not_allowed(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    allowed = allowed_methods(request)
    if allowed:
        exc.headers = {**(exc.headers or {}), "Allow": ", ".join(allowed)}
    return await errors.http_error(request, exc)
