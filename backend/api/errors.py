"""The one place that maps domain errors to HTTP statuses and messages."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import OperationalError

from backend.flags import FlagError, FlagNotFound, FlagStoreUnavailable, RollbackModeActive

log = logging.getLogger("pcm_ops_tools.api")

STATUS: dict[type[FlagError], int] = {
    FlagNotFound: 404,
    RollbackModeActive: 409,
    FlagStoreUnavailable: 503,
}


def _status_of(exc: FlagError) -> int:
    for kind, code in STATUS.items():
        if isinstance(exc, kind):
            return code
    return 400


async def flag_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, FlagError)
    code = _status_of(exc)
    if code >= 500:
        log.error("request %s %s failed: %s", request.method, request.url.path, exc)
    return JSONResponse({"detail": str(exc)}, status_code=code)


async def database_unavailable(request: Request, exc: Exception) -> JSONResponse:
    # Raised outside the flag engine too (authentication, plain reads): say what is wrong.
    log.error(
        "request %s %s: database unavailable: %s",
        request.method,
        request.url.path,
        str(exc).splitlines()[0],
    )
    return JSONResponse(
        {"detail": "the database is unavailable; see the server log"}, status_code=503
    )


async def unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled exception on %s %s", request.method, request.url.path)
    return JSONResponse({"detail": "internal error; see the server log"}, status_code=500)


def install(app: FastAPI) -> None:
    app.add_exception_handler(FlagError, flag_error)
    app.add_exception_handler(OperationalError, database_unavailable)
    app.add_exception_handler(Exception, unexpected_error)
