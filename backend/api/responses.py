"""The error answers routes declare in the OpenAPI document (`responses=`), so that the document
lists every status a route can return, with the content types it really has.

Errors are `application/problem+json` when `enhanced_error_handling` is on and the framework's
`application/json` (`{"detail": ...}`) when it is off; both are declared. Routers declare what
every route of theirs can answer (`AUTHENTICATED`: 401 without credentials, 403 without the role
or the CSRF token, 422 for bad input, 503 while the database is unreachable); routes add their
own (404, 409, 413, 429, ...).
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from backend.api.errors import PROBLEM_TYPE

# Loose on purpose: the two error shapes (problem details, the framework's) share no field.
_ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {},
        "instance": {"type": "string"},
        "request_id": {"type": "string"},
        "errors": {"type": "array", "items": {"type": "object"}},
    },
}
_WHY: dict[int, str] = {
    400: "The request cannot be used as sent",
    401: "No valid credentials (bearer token or session cookie)",
    403: "The caller's role does not allow this, or the CSRF token is missing",
    404: "No such resource",
    409: "Conflicts with the current state (rollback mode, a duplicate, a disabled provider)",
    413: "The request body is larger than the server accepts",
    422: "Invalid input (including JSON nested too deep)",
    429: "Too many failed sign-ins; retry after the Retry-After header's seconds",
    503: "The database (or the key ring) is unavailable",
}


def error(status: int, description: str | None = None) -> dict[str, Any]:
    """One declared error answer, in both of the error formats."""
    return {
        "description": description or _WHY.get(status) or HTTPStatus(status).phrase,
        "content": {
            PROBLEM_TYPE: {"schema": _ERROR_SCHEMA},
            "application/json": {"schema": _ERROR_SCHEMA},
        },
    }


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` declaring these error statuses."""
    return {status: error(status) for status in statuses}


PUBLIC = errors(422, 503)
AUTHENTICATED = errors(401, 403, 422, 503)
NOT_FOUND = errors(404)
CONFLICT = errors(409)
BODY = errors(413, 422)
