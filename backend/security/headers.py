"""Security headers on every response (`xss_protection_enabled`), as ASGI middleware.

On: a strict Content-Security-Policy with a fresh nonce per response (no inline script runs
unless it carries the nonce; templates find it in `request.state.csp_nonce`), nosniff, frame
denial, a referrer policy. Off (legacy): only `X-XSS-Protection: 1; mode=block`.
The flag is read per response, so switching it takes effect on the next request.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from backend.security.flag import enabled

FlagCheck = Callable[[str], bool]

LEGACY = [(b"x-xss-protection", b"1; mode=block")]
# ReDoc (/redoc) inserts <style> elements as it loads, before any nonce can reach it; inline
# styles are allowed there, and only there. Script stays nonce-only on every page.
_INLINE_STYLE_PATHS = ("/redoc",)


def content_security_policy(nonce: str, *, inline_styles: bool = False) -> str:
    style = "'self' 'unsafe-inline'" if inline_styles else f"'self' 'nonce-{nonce}'"
    return (
        f"default-src 'self'; script-src 'nonce-{nonce}' 'strict-dynamic'; "
        f"style-src {style}; img-src 'self' data:; object-src 'none'; "
        "base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
    )


def strict_headers(nonce: str, path: str = "") -> list[tuple[bytes, bytes]]:
    policy = content_security_policy(nonce, inline_styles=path in _INLINE_STYLE_PATHS)
    return [
        (b"content-security-policy", policy.encode()),
        (b"x-content-type-options", b"nosniff"),
        (b"x-frame-options", b"DENY"),
        (b"referrer-policy", b"strict-origin-when-cross-origin"),
        (b"cross-origin-opener-policy", b"same-origin"),
    ]


class SecurityHeaders:
    """Give each request a CSP nonce and each response the headers of the flag's state."""

    def __init__(self, app: ASGIApp, flag: FlagCheck = enabled) -> None:
        self.app = app
        self.flag = flag

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        nonce = secrets.token_urlsafe(18)
        state = scope.setdefault("state", {})
        state["csp_nonce"] = nonce
        # Set by the caller dependency for signed-in browsers; None for everyone else.
        state.setdefault("session_id", None)
        state.setdefault("csrf_token", None)
        path = scope.get("path", "")

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                strict = self.flag("xss_protection_enabled")
                extra = strict_headers(nonce, path) if strict else LEGACY
                present = {name.lower() for name, _ in message.get("headers", [])}
                message["headers"] = [
                    *message.get("headers", []),
                    *((k, v) for k, v in extra if k not in present),
                ]
            await send(message)

        await self.app(scope, receive, with_headers)
