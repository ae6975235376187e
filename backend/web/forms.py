"""Form input for the pages: validation errors of the API's own schemas, keyed by field, so a
template can show each message next to its input."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

FieldErrors = dict[str, str]


def field_errors(
    errors: Sequence[Mapping[str, Any]], *, skip: int = 0, patterns: dict[str, str] | None = None
) -> FieldErrors:
    """One message per top-level field of pydantic's `errors()`, after `skip` leading loc parts
    (e.g. "body", "params"); `patterns` says in words what a field's pattern wants."""
    found: FieldErrors = {}
    for err in errors:
        loc = err.get("loc", ())[skip:]
        field = str(loc[0]) if loc else "form"
        message = str(err.get("msg", "invalid value")).removeprefix("Value error, ")
        kind, ctx = err.get("type"), err.get("ctx") or {}
        if kind == "string_pattern_mismatch" and patterns and field in patterns:
            message = patterns[field]
        elif kind in ("too_short", "too_long") and isinstance(err.get("input"), str):
            # Secret fields report "items", not characters.
            bound = "at least" if kind == "too_short" else "at most"
            limit = ctx.get("min_length" if kind == "too_short" else "max_length")
            message = f"{bound} {limit} characters"
        found.setdefault(field, message)
    return found
