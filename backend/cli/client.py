"""How the CLI reaches PCM-Ops Tools: the running server with the admin token, or, when the
server does not answer, the database directly through the same flag runtime."""

from __future__ import annotations

import getpass
from typing import Any

import httpx
from rich.markup import escape
from sqlalchemy import Engine

from backend.cli.console import UNREACHABLE, err, fail
from backend.core.config import Settings
from backend.db.primary import boot_values, enable_refusals
from backend.db.session import database_missing, engine_for, session_factory
from backend.flags import FlagRuntime, FlagStoreUnavailable, current
from backend.security.audit_keys import anchor_sessions
from backend.security.credentials_crypto import KeyRingError


class ServerDown(Exception):
    """The server did not answer."""


class ApiError(Exception):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"HTTP {status}: {detail}")
        self.status = status
        self.detail = detail


def read_token(settings: Settings) -> str | None:
    path = settings.admin_token_path
    try:
        return path.read_text().strip() or None
    except OSError:
        return None


class Api:
    """A small client of the HTTP API; raises ServerDown when nothing listens."""

    def __init__(self, settings: Settings, timeout: float = 5.0) -> None:
        self.settings = settings
        token = read_token(settings)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.Client(base_url=settings.base_url, headers=headers, timeout=timeout)

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return self.http.request(method, path, **kwargs)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.RemoteProtocolError) as exc:
            raise ServerDown(f"no server answers at {self.settings.base_url}: {exc}") from exc

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.request(method, path, **kwargs)
        try:
            body = response.json()
        except ValueError:
            body = {"detail": response.text[:500]}
        if response.status_code >= 400:
            detail = body.get("detail", body) if isinstance(body, dict) else body
            raise ApiError(response.status_code, str(detail))
        return body


def missing_database_message(settings: Settings) -> str | None:
    """What to say when the SQLite database file is gone; None when it is there."""
    path = database_missing(settings)
    if path is None:
        return None
    return (
        f"the database {path} is missing. Restore the latest backup: ./pcm-ops db restore FILE"
        " (./pcm-ops db list shows them); for a first setup: ./pcm-ops db init (or ./start.sh)"
    )


def open_database(settings: Settings) -> Engine:
    """The database for commands that work on it directly. Never creates one: when the SQLite
    file is gone the command stops here and says how to restore it (exit 5)."""
    missing = missing_database_message(settings)
    if missing is not None:
        fail(missing, UNREACHABLE)
    return engine_for(settings, create=False)


def local_runtime(settings: Settings) -> FlagRuntime:
    """A flag runtime on the database itself, for when the server is down. When the database
    is unreachable too (a missing SQLite file included: it is never recreated here), it serves
    the last-known state and journals rollbacks (runtime.last_error says why); without a
    last-known state the command stops with the reason."""
    missing = missing_database_message(settings)
    if missing is not None:
        err.print(f"[yellow]warning:[/yellow] {escape(missing)}")
    sessions = session_factory(engine_for(settings, create=False))
    try:
        anchor_sessions(sessions, settings)
    except (KeyRingError, OSError) as exc:
        # The rollback must still work: its events are then chained without the key, and
        # `pcm-ops db verify` says so.
        err.print(f"warning: audit key unavailable ({exc}); audit events are not keyed")
    runtime = FlagRuntime(
        sessions,
        rollback_mode=settings.rollback_mode,
        overrides=settings.flag_overrides,
        state_file=settings.state_file,
        journal_file=settings.rollback_journal_file,
        boot_values=boot_values(settings),
        enable_refusals=enable_refusals(settings),
    )
    try:
        runtime.refresh(force=True)
    except FlagStoreUnavailable:
        if current().version < 0:
            if missing is not None:
                fail(missing, UNREACHABLE)
            raise
    return runtime


def cli_actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"
