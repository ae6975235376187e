"""CSRF tokens bound to a session (`csrf_tokens_enabled`).

A random token is stored in the session's data at sign-in ("csrf_token"). A state-changing
request authenticated by the session cookie must send it back, in the `X-CSRF-Token` header
(scripts, fetch) or the `csrf_token` form field (server-rendered forms, where templates find it
in `request.state.csrf_token`). Bearer-token requests are exempt: a browser never adds that
header on its own, so they cannot be forged cross-site.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Mapping
from typing import Any

from backend.security.errors import CsrfRejected

HEADER = "X-CSRF-Token"
FIELD = "csrf_token"
SESSION_KEY = "csrf_token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})


def new_token() -> str:
    return secrets.token_urlsafe(32)


def needs_check(method: str) -> bool:
    return method.upper() not in SAFE_METHODS


def verify(session_data: Mapping[str, Any], submitted: str | None) -> None:
    """Raise CsrfRejected unless `submitted` is the session's token."""
    expected = session_data.get(SESSION_KEY)
    if not submitted:
        raise CsrfRejected(
            f"CSRF token missing: send the session's token in the {HEADER} header "
            f"or the {FIELD} form field (GET /api/auth/me returns it)"
        )
    if not isinstance(expected, str) or not hmac.compare_digest(
        expected.encode(), submitted.encode()
    ):
        raise CsrfRejected("CSRF token invalid for this session: reload the page and try again")
