"""What a page says after a form posted and redirected to it. The URL carries a code of NOTICES
and the name of what changed (`?notice=flag_off&subject=csrf_tokens_enabled`), never text:
the page turns the code into its message, and shows it only when the subject is one the page
itself lists. So a link from anywhere cannot make the console say something it did not."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import Query
from fastapi.responses import RedirectResponse

NOTICES: dict[str, str] = {
    "flag_on": "{subject} is now on",
    "flag_off": "{subject} is now off",
    "flag_already_on": "{subject} was already on: nothing changed",
    "flag_already_off": "{subject} was already off: nothing changed",
    "flag_at_rollback_value": "{subject} is already at its rollback value: nothing changed",
    "user_added": "User {subject} added as {role}",
    "user_disabled": "User {subject} disabled",
    "user_enabled": "User {subject} enabled",
    "user_role": "User {subject} is now {role}",
    "user_password": "Password of {subject} reset; their sessions have ended",
    "token_revoked": "Token {name} revoked",
    "provider_added": "Provider {subject} added",
    "provider_saved": "Provider {subject} saved",
    "provider_deleted": "Provider deleted, with every credential stored for it",
    "credentials_stored": "Credentials for {subject} stored",
    "credentials_deleted": "Credentials for {subject} deleted",
}

# Generous: a notice link of an older version (which carried text) still opens the page.
NoticeCode = Annotated[str | None, Query(max_length=200)]
NoticeSubject = Annotated[str | None, Query(max_length=200)]
# What a page knows about each subject it lists, for the message's other fields ({role}, ...).
Known = Mapping[str, Mapping[str, Any]]


def redirect_with_notice(path: str, code: str, subject: str | None = None) -> RedirectResponse:
    """303 to `path` with the notice `code` (a key of NOTICES) about `subject`."""
    if code not in NOTICES:
        raise ValueError(f"unknown notice code {code!r}")
    query = {"notice": code, **({"subject": subject} if subject is not None else {})}
    return RedirectResponse(f"{path}?{urlencode(query)}", status_code=303)


def notice_text(code: str | None, subject: str | None, known: Known) -> str | None:
    """The message of `code` about `subject`; None for an unknown code, or a subject the page
    does not list (a hand-made link), rather than an echo of the URL."""
    template = NOTICES.get(code or "")
    if template is None:
        return None
    if "{" not in template:
        return template
    if subject is None or subject not in known:
        return None
    return template.format(subject=subject, **known[subject])
