"""The one place that maps errors of the AWS side to HTTP statuses, for the AWS routers."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import HTTPException, Request, Response
from fastapi.routing import APIRoute

from backend.aws.errors import AwsError, Conflict, CredentialsUnreadable, NotFound
from backend.security.credentials_crypto import KeyRingError

STATUS: dict[type[Exception], int] = {
    NotFound: 404,
    Conflict: 409,
    CredentialsUnreadable: 409,
    KeyRingError: 503,
}


def status_of(exc: Exception) -> int:
    for kind, code in STATUS.items():
        if isinstance(exc, kind):
            return code
    return 400


class AwsRoute(APIRoute):
    """A route whose AWS errors become HTTP errors, left to the app's handlers to render."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def mapped(request: Request) -> Response:
            try:
                return await handler(request)
            except (AwsError, KeyRingError) as exc:
                raise HTTPException(status_code=status_of(exc), detail=str(exc)) from exc

        return mapped
