"""The one place that maps errors to HTTP responses, and the request id every response carries.

`enhanced_error_handling` on: every error is RFC 9457 `application/problem+json`
(`type`, `title`, `status`, `detail`, `instance`, `request_id`, and `errors` with one message per
field for validation failures); nothing internal (stack, exception text, input) is sent.
Off: the framework's default bodies (`{"detail": ...}`, FastAPI's validation list), except that
a validation error's `input` is never sent for a secret field (password, key, token, ...) nor
when it is raw bytes (an undecodable body): see `public_errors`.
Either way each response has `X-Request-ID` and error responses are logged with that id; no
request body, nor any part of it, is ever logged.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exception_handlers import (
    http_exception_handler,
    request_validation_exception_handler,
)
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from backend.flags import (
    EnableRefused,
    FlagError,
    FlagNotFound,
    FlagStoreBusy,
    FlagStoreUnavailable,
    RecordNotFound,
    RollbackModeActive,
    store_busy,
)
from backend.security.errors import (
    CsrfRejected,
    InvalidInput,
    LoginThrottled,
    SecurityError,
    SessionNotFound,
    TokenNotFound,
    UserExists,
    UserNotFound,
)
from backend.security.flag import enabled

log = logging.getLogger("pcm_ops_tools.api")

STATUS: dict[type[Exception], int] = {
    FlagNotFound: 404,
    RecordNotFound: 404,
    RollbackModeActive: 409,
    EnableRefused: 409,
    FlagStoreUnavailable: 503,
    UserNotFound: 404,
    TokenNotFound: 404,
    UserExists: 409,
    InvalidInput: 422,
    LoginThrottled: 429,
    CsrfRejected: 403,
    SessionNotFound: 401,
}
PROBLEM_TYPE = "application/problem+json"
# Seconds a client is told to wait after "database busy, retry" (the lock is usually brief).
BUSY_RETRY_AFTER = "1"
_INCOMING_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")


def _status_of(exc: Exception) -> int:
    for kind, code in STATUS.items():
        if isinstance(exc, kind):
            return code
    return 400


def request_id_of(request: Request) -> str:
    return str(getattr(request.state, "request_id", "") or "-")


def enhanced() -> bool:
    return enabled("enhanced_error_handling")


def problem(
    request: Request,
    status: int,
    detail: str,
    *,
    errors: list[dict[str, str]] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "instance": request.url.path,
        "request_id": request_id_of(request),
    }
    if errors is not None:
        body["errors"] = errors
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_TYPE)


def _page(request: Request, status: int, detail: str) -> Response | None:
    """A browser asking for a console page gets an HTML error page (the web console installs
    the renderer); API clients keep their JSON."""
    render = getattr(request.app.state, "render_error_page", None)
    wants_html = "text/html" in request.headers.get("accept", "")
    if render is None or not wants_html or request.url.path.startswith(("/api/", "/aws/")):
        return None
    page: Response = render(request, status, detail)
    return page


def _respond(
    request: Request, status: int, detail: str, headers: dict[str, str] | None = None
) -> Response:
    html = _page(request, status, detail)
    if html is not None:
        return html
    if enhanced():
        return problem(request, status, detail, headers=headers)
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


async def domain_error(request: Request, exc: Exception) -> Response:
    code = _status_of(exc)
    if code >= 500:
        log.error(
            "request %s %s %s failed: %s",
            request_id_of(request),
            request.method,
            request.url.path,
            exc,
        )
    headers = None
    if isinstance(exc, LoginThrottled):
        headers = {"Retry-After": str(exc.retry_after)}
    elif isinstance(exc, FlagStoreBusy):
        headers = {"Retry-After": BUSY_RETRY_AFTER}
    return _respond(request, code, str(exc), headers)


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code >= 400:
        detail_text = (
            exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
        )
        html = _page(request, exc.status_code, detail_text)
        if html is not None:
            return html
    if not enhanced():
        return await http_exception_handler(request, exc)
    if exc.status_code in (204, 304):
        return Response(status_code=exc.status_code, headers=exc.headers)
    detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
    headers = dict(exc.headers) if exc.headers else None
    return problem(request, exc.status_code, detail, headers=headers)


def _field(loc: tuple[Any, ...] | list[Any]) -> tuple[str, str]:
    parts = [str(p) for p in loc]
    where = parts[0] if parts and parts[0] in ("body", "query", "path", "header", "cookie") else ""
    rest = parts[1:] if where else parts
    return where or "body", ".".join(rest) or "(request body)"


# A field whose value must never be echoed back (nor logged: see backend.core.log).
_SECRET_FIELD = re.compile(r"pass|secret|token|key|credential|authorization|cookie", re.I)
REDACTED = "[redacted]"


def _redact(value: Any) -> Any:
    """`value` with every secret-named member replaced, recursively."""
    if isinstance(value, dict):
        return {
            k: REDACTED if _SECRET_FIELD.search(str(k)) else _redact(v) for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [_redact(v) for v in value]
    return value


def public_errors(errors: Sequence[Any]) -> list[dict[str, Any]]:
    """FastAPI's validation errors as they may be shown: no `input` of a secret field or of raw
    bytes (a body that is not UTF-8 is the whole body, password included), and secrets inside
    an object input (a "missing field" error carries the whole object) redacted."""
    shown = []
    for err in errors:
        item = {k: v for k, v in dict(err).items() if k != "input"}
        if "input" in err:
            value = err["input"]
            secret = any(_SECRET_FIELD.search(str(part)) for part in item.get("loc", ()))
            if not (secret or isinstance(value, bytes | bytearray | memoryview)):
                item["input"] = _redact(value)
        shown.append(item)
    return shown


async def validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    if not enhanced():
        return await request_validation_exception_handler(
            request, RequestValidationError(public_errors(exc.errors()))
        )
    errors = []
    for err in exc.errors():
        location, field = _field(err.get("loc", ()))
        errors.append({"location": location, "field": field, "message": str(err.get("msg", ""))})
    summary = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
    return problem(request, 422, f"invalid request: {summary}", errors=errors)


async def database_unavailable(request: Request, exc: Exception) -> Response:
    # Raised outside the flag engine too (authentication, plain reads): say what is wrong.
    if store_busy(exc):
        # Another connection held a lock past the bounded wait: contention, not an outage.
        log.warning(
            "request %s %s %s: database busy: %s",
            request_id_of(request),
            request.method,
            request.url.path,
            str(exc).splitlines()[0],
        )
        return _respond(
            request, 503, "database busy, retry", headers={"Retry-After": BUSY_RETRY_AFTER}
        )
    log.error(
        "request %s %s %s: database unavailable: %s",
        request_id_of(request),
        request.method,
        request.url.path,
        str(exc).splitlines()[0],
    )
    return _respond(request, 503, "the database is unavailable; see the server log")


def internal_error_response(request: Request) -> Response:
    return _respond(request, 500, "internal error; see the server log")


class RequestContext:
    """Give each request an id (X-Request-ID), log failed requests with it, and turn an
    unhandled exception into a 500 that passes through the other middleware."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = dict(scope.get("headers", [])).get(b"x-request-id", b"").decode("latin-1")
        request_id = incoming if _INCOMING_ID.fullmatch(incoming) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        started = False

        async def tagged(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message["headers"] = [
                    *message.get("headers", []),
                    (b"x-request-id", request_id.encode()),
                ]
                status = int(message["status"])
                if status >= 400:
                    log.log(
                        logging.ERROR if status >= 500 else logging.INFO,
                        "request %s %s %s -> %d",
                        request_id,
                        scope.get("method", ""),
                        scope.get("path", ""),
                        status,
                    )
            await send(message)

        try:
            await self.app(scope, receive, tagged)
        except ClientDisconnect:
            # The client went away before its request was read: nothing to answer, and not a
            # server error (the metrics count it as 499, not 5xx).
            log.info(
                "request %s %s %s: client disconnected",
                request_id,
                scope.get("method", ""),
                scope.get("path", ""),
            )
        except Exception:
            log.exception(
                "request %s %s %s: unhandled exception",
                request_id,
                scope.get("method", ""),
                scope.get("path", ""),
            )
            if started:
                raise
            response = internal_error_response(Request(scope))
            await response(scope, receive, tagged)


def install(app: FastAPI) -> None:
    app.add_exception_handler(FlagError, domain_error)
    app.add_exception_handler(SecurityError, domain_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(OperationalError, database_unavailable)
