"""`pcm-ops user …` and `pcm-ops token …`: local users and API tokens, on the database directly."""

from __future__ import annotations

import sys
from datetime import datetime
from typing import Annotated

import typer
from rich.console import Console
from sqlalchemy.orm import Session, sessionmaker

from backend.cli.client import open_database
from backend.cli.console import JsonOpt, emit_json, print_table
from backend.core.config import from_environ
from backend.db.session import session_factory
from backend.flags import ConfigurationError
from backend.security import throttle, tokens, users
from backend.security.errors import SecurityError

user_app = typer.Typer(
    help="Local users: create, change password, disable, unlock.", no_args_is_help=True
)
token_app = typer.Typer(help="API tokens: create, list, revoke.", no_args_is_help=True)
console = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

RoleOpt = Annotated[str, typer.Option("--role", help="viewer, operator or admin")]
StdinOpt = Annotated[
    bool, typer.Option("--password-stdin", help="Read the password from standard input.")
]
# Exit codes as elsewhere in pcm-ops: 2 bad input, 3 not found.
_EXIT = {"UserNotFound": 3, "TokenNotFound": 3}


def _sessions() -> sessionmaker[Session]:
    try:
        settings = from_environ()
    except ConfigurationError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    return session_factory(open_database(settings))


def _fail(exc: SecurityError) -> typer.Exit:
    err.print(f"[red]error:[/red] {exc}", markup=True)
    return typer.Exit(_EXIT.get(type(exc).__name__, 2))


def _password(from_stdin: bool, *, confirm: bool = True) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    if not sys.stdin.isatty():
        # getpass would fall back to echoing the password (GetPassWarning), or fail.
        err.print(
            "[red]error:[/red] no terminal to ask for the password on: give it on standard"
            " input with --password-stdin, e.g. [bold]printf '%s\\n' \"$PASSWORD\" |"
            " pcm-ops user create NAME --password-stdin[/bold]"
        )
        raise typer.Exit(2)
    value: str = typer.prompt("Password", hide_input=True, confirmation_prompt=confirm)
    return value


def _shown(moment: datetime | None, default: str = "") -> str:
    """Local time as a table shows it (a date and a time, which may wrap between them)."""
    return f"{moment.astimezone():%Y-%m-%d %H:%M:%S}" if moment else default


@user_app.command("create")
def user_create(username: str, role: RoleOpt = "viewer", password_stdin: StdinOpt = False) -> None:
    """Add a user (the password is prompted for, or read with --password-stdin)."""
    password = _password(password_stdin)
    try:
        with _sessions().begin() as s:
            users.create_user(s, username=username, password=password, role=role)
    except SecurityError as exc:
        raise _fail(exc) from None
    console.print(f"Created user {username!r} with role {role}.")


@user_app.command("passwd")
def user_passwd(username: str, password_stdin: StdinOpt = False) -> None:
    """Set a user's password; their sessions end."""
    password = _password(password_stdin)
    try:
        with _sessions().begin() as s:
            users.set_password(s, username=username, password=password)
    except SecurityError as exc:
        raise _fail(exc) from None
    console.print(f"Password of {username!r} changed; their sessions have ended.")


@user_app.command("disable")
def user_disable(username: str) -> None:
    """Disable a user; their sessions end at once."""
    try:
        with _sessions().begin() as s:
            users.set_disabled(s, username=username, disabled=True)
    except SecurityError as exc:
        raise _fail(exc) from None
    console.print(f"User {username!r} disabled; their sessions have ended.")


@user_app.command("enable")
def user_enable(username: str) -> None:
    """Re-enable a disabled user."""
    try:
        with _sessions().begin() as s:
            users.set_disabled(s, username=username, disabled=False)
    except SecurityError as exc:
        raise _fail(exc) from None
    console.print(f"User {username!r} enabled.")


@user_app.command("unlock")
def user_unlock(
    username: str,
    address: Annotated[
        str | None,
        typer.Option("--address", help="Also clear this client address's block (an IP)."),
    ] = None,
) -> None:
    """Clear the sign-in blocks of a user (from every address), and of --address if given."""
    try:
        with _sessions().begin() as s:
            name = users.get_user(s, username=username.strip().lower()).username
            cleared = throttle.unlock_account(s, username=name)
            if address is not None:
                cleared += throttle.unlock_address(s, address=address.strip())
    except SecurityError as exc:
        raise _fail(exc) from None
    where = f" and address {address.strip()}" if address is not None else ""
    console.print(
        f"Sign-in blocks of {name!r}{where} cleared ({cleared} record(s)); they can sign in now."
    )


@user_app.command("list")
def user_list(as_json: JsonOpt = False) -> None:
    """Every user, role and state."""
    with _sessions()() as s:
        found = list(users.list_users(s))
    if as_json:
        emit_json([users.user_out(u) for u in found])
        return
    rows = [
        (u.username, u.role, "disabled" if u.disabled else "active", _shown(u.last_login_at))
        for u in found
    ]
    headers = ("username", "role", "state", "last sign-in")
    print_table(headers, rows, ids={"username"}, out=console)


@token_app.command("create")
def token_create(name: str, role: RoleOpt = "viewer") -> None:
    """Create a token; its secret is printed once, alone on stdout."""
    try:
        checked = users.check_role(role)
        with _sessions().begin() as s:
            row, plaintext = tokens.create_token(s, name=name, role=checked)
            token_id = row.id
    except SecurityError as exc:
        raise _fail(exc) from None
    err.print(f"Created token {token_id} {name!r} ({role}); it is shown only now:")
    sys.stdout.write(plaintext + "\n")


@token_app.command("list")
def token_list(as_json: JsonOpt = False) -> None:
    """Every token (never the secrets)."""
    with _sessions()() as s:
        found = list(tokens.list_tokens(s))
    if as_json:
        emit_json([tokens.token_out(t) for t in found])
        return
    rows = [
        (
            str(t.id),
            t.name,
            t.prefix,
            t.role,
            _shown(t.last_used_at, "never"),
            _shown(t.revoked_at),
        )
        for t in found
    ]
    headers = ("id", "name", "prefix", "role", "last used", "revoked")
    print_table(headers, rows, ids={"id", "name", "prefix"}, out=console)


@token_app.command("revoke")
def token_revoke(token_id: int) -> None:
    """Revoke a token by id (see `pcm-ops token list`)."""
    try:
        with _sessions().begin() as s:
            tokens.revoke_token(s, token_id=token_id)
    except SecurityError as exc:
        raise _fail(exc) from None
    console.print(f"Token {token_id} revoked.")
