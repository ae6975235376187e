"""Errors of the security package, mapped to HTTP statuses in backend/api/errors.py.

SecurityError
├── UserExists          (409)
├── UserNotFound        (404)
├── TokenNotFound       (404)
├── InvalidInput        (422)  bad username, role or too-short password
├── LoginThrottled      (429)  too many failed sign-ins; carries retry_after seconds
├── CsrfRejected        (403)  a cookie-session request without a valid CSRF token
└── SessionNotFound     (401)  the session ended (logout, timeout) or was never there
WeakSecretKey is a ConfigurationError: it stops start-up.
"""

from __future__ import annotations

from backend.flags.errors import ConfigurationError


class SecurityError(Exception):
    """Base of the errors below."""


class UserExists(SecurityError):
    def __init__(self, username: str) -> None:
        super().__init__(f"a user named {username!r} already exists")


class UserNotFound(SecurityError):
    def __init__(self, username: str) -> None:
        super().__init__(f"no user named {username!r}")


class TokenNotFound(SecurityError):
    def __init__(self, ident: str) -> None:
        super().__init__(f"no API token {ident}")


class InvalidInput(SecurityError):
    pass


class LoginThrottled(SecurityError):
    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many failed sign-in attempts; try again in {retry_after} seconds")
        self.retry_after = retry_after


class CsrfRejected(SecurityError):
    pass


class WeakSecretKey(ConfigurationError):
    pass


class SessionNotFound(SecurityError):
    pass
