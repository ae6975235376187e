"""Request body limits, enforced before any handler parses a body: size (413), JSON nesting
depth (422) and UTF-8 encoding (422: JSON is UTF-8, RFC 8259).

The size is checked twice: from `Content-Length` before a byte is read, and by counting the
bytes that actually arrive (a chunked body has no length). The depth is counted by a scan of
brackets outside JSON strings as the bytes arrive, so a body nested 50,000 levels deep is
refused without any parser recursing into it. Every body but a form is read as JSON by its
route, so each is scanned and decoded as it arrives; form bodies are only limited in size.
"""

from __future__ import annotations

import codecs
import re
from http import HTTPStatus

from fastapi import HTTPException
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from backend.api import errors

_FORM_TYPES = (b"application/x-www-form-urlencoded", b"multipart/form-data")
_SIGNIFICANT = re.compile(rb'[\[\]{}"\\]')


class BodyTooLarge(HTTPException):
    """The request body is larger than the server accepts."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
            f"the request body is larger than {limit} bytes",
        )


class BodyTooDeep(HTTPException):
    """The JSON body nests arrays and objects deeper than the server accepts."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            HTTPStatus.UNPROCESSABLE_ENTITY,
            f"the JSON body nests arrays/objects deeper than {limit} levels",
        )


class BodyNotUtf8(HTTPException):
    """The body is not UTF-8, so it cannot be JSON."""

    def __init__(self) -> None:
        super().__init__(
            HTTPStatus.UNPROCESSABLE_ENTITY, "the request body is not valid UTF-8 (JSON must be)"
        )


class JsonScan:
    """Depth and encoding of a JSON body fed in pieces."""

    def __init__(self, max_depth: int) -> None:
        self.depth = DepthScan(max_depth)
        self.decoder = codecs.getincrementaldecoder("utf-8")()

    def feed(self, chunk: bytes, *, last: bool) -> None:
        try:
            self.decoder.decode(chunk, final=last)
        except UnicodeDecodeError:
            raise BodyNotUtf8() from None
        self.depth.feed(chunk)


class DepthScan:
    """The nesting depth of a JSON text fed in pieces, counted without parsing it."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.depth = 0
        self.in_string = False
        self.escape_pending = False

    def feed(self, chunk: bytes) -> None:
        """Raise BodyTooDeep as soon as the depth passes the limit."""
        skip = 0 if self.escape_pending else -1
        self.escape_pending = False
        for match in _SIGNIFICANT.finditer(chunk):
            at = match.start()
            if at == skip:
                continue
            char = chunk[at]
            if self.in_string:
                if char == 0x5C:  # a backslash escapes the next byte, whatever it is
                    skip = at + 1
                    self.escape_pending = skip == len(chunk)
                elif char == 0x22:
                    self.in_string = False
            elif char == 0x22:
                self.in_string = True
            elif char in (0x5B, 0x7B):
                self.depth += 1
                if self.depth > self.limit:
                    raise BodyTooDeep(self.limit)
            elif char in (0x5D, 0x7D):
                self.depth = max(0, self.depth - 1)


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return bytes(value)
    return None


class BodyLimits:
    """Refuse request bodies past `max_bytes` (413) or JSON nested past `max_depth` (422)."""

    def __init__(self, app: ASGIApp, *, max_bytes: int, max_depth: int) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.max_depth = max_depth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _header(scope, b"content-length")
        if declared is not None and declared.strip().isdigit() and int(declared) > self.max_bytes:
            await self._refuse(scope, receive, send, BodyTooLarge(self.max_bytes))
            return
        content_type = (_header(scope, b"content-type") or b"").lower()
        scan = None if content_type.startswith(_FORM_TYPES) else JsonScan(self.max_depth)
        received = 0
        started = False

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                chunk: bytes = message.get("body", b"")
                received += len(chunk)
                if received > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
                if scan is not None:
                    scan.feed(chunk, last=not message.get("more_body", False))
            return message

        async def watched(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited, watched)
        except (BodyTooLarge, BodyTooDeep, BodyNotUtf8) as exc:
            # Raised where no exception handler stood (outside a route): answer here.
            if started:
                raise
            await self._refuse(scope, receive, send, exc)

    @staticmethod
    async def _refuse(scope: Scope, receive: Receive, send: Send, exc: HTTPException) -> None:
        response = await errors.http_error(Request(scope, receive), exc)
        await response(scope, receive, send)
