"""Jinja2 environment of the web console (autoescaped) and the page response helper."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from backend.web.rollback_alert import rollback_alert

TEMPLATES = Jinja2Templates(directory=Path(__file__).resolve().parent / "templates")
# Every user-supplied text is escaped; nobody may turn this off by accident.
TEMPLATES.env.autoescape = True


def _when(value: str | datetime | None) -> str:
    if value is None:
        return ""
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _clock(value: datetime) -> str:
    """A time of today as "11:44 UTC", of another day with its date."""
    moment = value.astimezone(UTC)
    if moment.date() == datetime.now(UTC).date():
        return moment.strftime("%H:%M UTC")
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def _person(actor: str) -> str:
    """ "user:ada" reads as "ada"; tokens keep their kind ("token:ci")."""
    return actor.removeprefix("user:")


def _onoff(value: bool | None) -> str:
    return "—" if value is None else ("on" if value else "off")


TEMPLATES.env.filters["when"] = _when
TEMPLATES.env.filters["onoff"] = _onoff
TEMPLATES.env.filters["clock"] = _clock
TEMPLATES.env.filters["person"] = _person


def page(request: Request, name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    """Render a page; pages show live state, so no cache keeps them."""
    context.setdefault("who", getattr(request.state, "principal", None))
    context.setdefault("rollback_alert", rollback_alert(request))
    # The environment's rollback mode, named so that nobody takes it for a rollback made.
    runtime = getattr(request.app.state, "runtime", None)
    context.setdefault("safe_defaults", bool(runtime and runtime.rollback_mode))
    # `./stop.sh && PORT=8620 ./start.sh` when the server runs on another address than 8500.
    context.setdefault("restart_command", request.app.state.settings.restart_command())
    response = TEMPLATES.TemplateResponse(request, name, context, status_code=status_code)
    response.headers["Cache-Control"] = "no-store"
    return response
