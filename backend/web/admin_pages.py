"""/admin/users and /admin/tokens (admins only): users with their role and state, new users,
disable/enable, password resets; API tokens, created (the secret shown once) and revoked.
Everything goes through backend.security's service functions, like the API and the CLI."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Path, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError
from sqlalchemy.orm import Session

from backend.api.deps import RowId, SessionsDep
from backend.api.errors import STATUS
from backend.api.tokens import TokenCreate
from backend.api.users import UserCreate
from backend.security import tokens, users
from backend.security.errors import InvalidInput, SecurityError, UserExists
from backend.security.tokens import Role
from backend.web.access import PageAdmin
from backend.web.forms import FieldErrors, field_errors
from backend.web.notices import NoticeCode, NoticeSubject, notice_text, redirect_with_notice
from backend.web.templating import page

router = APIRouter(prefix="/admin", include_in_schema=False)
Username = Annotated[str, Path(max_length=64)]
TokenId = RowId
Field = Annotated[str, Form(max_length=2000)]
ROLES = [r.value for r in Role]


def _status(exc: SecurityError) -> int:
    return next((code for kind, code in STATUS.items() if isinstance(exc, kind)), 400)


def _checks(
    *, username: str | None = None, password: str | None = None, role: str | None = None
) -> FieldErrors:
    """The service's own checks, run one field at a time so each message finds its field."""
    errors: FieldErrors = {}
    for name, value, check in (
        ("username", username, users.check_username),
        ("password", password, users.check_password),
        ("role", role, users.check_role),
    ):
        if value is not None:
            try:
                check(value)
            except InvalidInput as exc:
                errors[name] = str(exc)
    return errors


# -- users -------------------------------------------------------------------------------------
def _admin_page(
    request: Request,
    template: str,
    listing: dict[str, Any],
    default_form: dict[str, Any],
    *,
    form: dict[str, Any] | None = None,
    errors: FieldErrors | None = None,
    shown_once: dict[str, str] | None = None,
    notice: str | None = None,
    error: str | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    """A list page of the admin area with its create form, errors and one-time secrets."""
    return page(
        request,
        template,
        status_code,
        **listing,
        roles=ROLES,
        form=form or default_form,
        errors=errors or {},
        shown_once=shown_once,
        notice=notice,
        error=error,
    )


def _users_page(
    request: Request,
    sessions: Any,
    *,
    notice_code: tuple[str | None, str | None] = (None, None),
    **shown: Any,
) -> HTMLResponse:
    with sessions() as s:
        rows = [users.user_out(u) for u in users.list_users(s)]
    if notice_code[0] is not None:
        known = {str(u["username"]): u for u in rows}
        shown["notice"] = notice_text(*notice_code, known)
    default = {"username": "", "role": "viewer"}
    return _admin_page(request, "admin_users.html", {"users": rows}, default, **shown)


@router.get("/users", response_class=HTMLResponse)
def users_page(
    request: Request,
    _: PageAdmin,
    sessions: SessionsDep,
    notice: NoticeCode = None,
    subject: NoticeSubject = None,
) -> HTMLResponse:
    return _users_page(request, sessions, notice_code=(notice, subject))


@router.post("/users", response_class=HTMLResponse)
def create_user(
    request: Request,
    _: PageAdmin,
    sessions: SessionsDep,
    username: Field = "",
    role: Field = "",
    password: Field = "",
) -> Response:
    form = {"username": username, "role": role}
    try:
        UserCreate.model_validate(
            {"username": username, "role": role, "password": password or None}
        )
    except ValidationError as exc:
        return _users_page(
            request, sessions, form=form, errors=field_errors(exc.errors()), status_code=422
        )
    errors = _checks(username=username, password=password or None, role=role)
    if errors:
        return _users_page(request, sessions, form=form, errors=errors, status_code=422)
    chosen = password or users.generate_password()
    try:
        with sessions.begin() as s:
            users.create_user(s, username=username, password=chosen, role=role)
    except UserExists as exc:
        return _users_page(
            request, sessions, form=form, errors={"username": str(exc)}, status_code=409
        )
    if password:
        return redirect_with_notice("/admin/users", "user_added", username)
    return _users_page(
        request,
        sessions,
        notice=f"User {username} added as {role}",
        shown_once={"label": f"Password of {username}", "value": chosen},
    )


def _change(request: Request, sessions: Any, username: str, change: Any, done: str) -> Response:
    try:
        with sessions.begin() as s:
            change(s)
    except SecurityError as exc:
        return _users_page(request, sessions, error=str(exc), status_code=_status(exc))
    return redirect_with_notice("/admin/users", done, username)


@router.post("/users/{username}/disable", response_class=HTMLResponse)
def disable_user(
    request: Request, username: Username, _: PageAdmin, sessions: SessionsDep
) -> Response:
    def change(s: Session) -> None:
        users.set_disabled(s, username=username, disabled=True)

    return _change(request, sessions, username, change, "user_disabled")


@router.post("/users/{username}/enable", response_class=HTMLResponse)
def enable_user(
    request: Request, username: Username, _: PageAdmin, sessions: SessionsDep
) -> Response:
    def change(s: Session) -> None:
        users.set_disabled(s, username=username, disabled=False)

    return _change(request, sessions, username, change, "user_enabled")


@router.post("/users/{username}/role", response_class=HTMLResponse)
def change_role(
    request: Request, username: Username, _: PageAdmin, sessions: SessionsDep, role: Field = ""
) -> Response:
    def change(s: Session) -> None:
        users.set_role(s, username=username, role=role)

    return _change(request, sessions, username, change, "user_role")


@router.post("/users/{username}/password", response_class=HTMLResponse)
def reset_password(
    request: Request,
    username: Username,
    _: PageAdmin,
    sessions: SessionsDep,
    password: Field = "",
) -> Response:
    chosen = password or users.generate_password()
    try:
        with sessions.begin() as s:
            users.set_password(s, username=username, password=chosen)
    except SecurityError as exc:
        return _users_page(request, sessions, error=str(exc), status_code=_status(exc))
    if password:
        return redirect_with_notice("/admin/users", "user_password", username)
    notice = f"Password of {username} reset; their sessions have ended"
    shown = {"label": f"New password of {username}", "value": chosen}
    return _users_page(request, sessions, notice=notice, shown_once=shown)


# -- tokens ------------------------------------------------------------------------------------
def _tokens_page(
    request: Request,
    sessions: Any,
    *,
    notice_code: tuple[str | None, str | None] = (None, None),
    **shown: Any,
) -> HTMLResponse:
    with sessions() as s:
        rows = [tokens.token_out(t) for t in tokens.list_tokens(s)]
    if notice_code[0] is not None:
        shown["notice"] = notice_text(*notice_code, {str(t["id"]): t for t in rows})
    default = {"name": "", "role": "viewer"}
    return _admin_page(request, "admin_tokens.html", {"tokens": rows}, default, **shown)


@router.get("/tokens", response_class=HTMLResponse)
def tokens_page(
    request: Request,
    _: PageAdmin,
    sessions: SessionsDep,
    notice: NoticeCode = None,
    subject: NoticeSubject = None,
) -> HTMLResponse:
    return _tokens_page(request, sessions, notice_code=(notice, subject))


@router.post("/tokens", response_class=HTMLResponse)
def create_token(
    request: Request, _: PageAdmin, sessions: SessionsDep, name: Field = "", role: Field = ""
) -> Response:
    form = {"name": name, "role": role}
    try:
        TokenCreate.model_validate(form)
    except ValidationError as exc:
        errors = field_errors(exc.errors())
        return _tokens_page(request, sessions, form=form, errors=errors, status_code=422)
    errors = _checks(role=role)
    if errors:
        return _tokens_page(request, sessions, form=form, errors=errors, status_code=422)
    with sessions.begin() as s:
        row, plaintext = tokens.create_token(s, name=name, role=users.check_role(role))
        token_id = row.id
    shown = {"label": f"Token {name} (#{token_id}, {role})", "value": plaintext}
    return _tokens_page(request, sessions, notice=f"Token {name} created", shown_once=shown)


@router.post("/tokens/{token_id}/revoke", response_class=HTMLResponse)
def revoke_token(
    request: Request, token_id: TokenId, _: PageAdmin, sessions: SessionsDep
) -> Response:
    try:
        with sessions.begin() as s:
            tokens.revoke_token(s, token_id=token_id)
    except SecurityError as exc:
        return _tokens_page(request, sessions, error=str(exc), status_code=_status(exc))
    return redirect_with_notice("/admin/tokens", "token_revoked", str(token_id))
