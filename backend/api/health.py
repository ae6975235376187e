"""/api/health: is the app up, is the database reachable, are the flags fresh (public)."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from backend.api.deps import RuntimeDep, SessionsDep
from backend.api.responses import PUBLIC
from backend.core import primary_file
from backend.core.config import Settings
from backend.db.outage import PendingInit
from backend.db.primary import unsynced_warning

router = APIRouter(tags=["health"], responses=PUBLIC)


def summary(flags: dict[str, Any], *, database_ok: bool) -> str:
    """What is wrong, in one line: "database unreachable, serving last-known state version 7,
    migrations pending"; "healthy" when nothing is."""
    problems = []
    if not database_ok or not flags["store_reachable"]:
        problems.append("database unreachable")
    if flags["from_last_known_state"]:
        problems.append(f"serving last-known state version {flags['version']}")
    elif flags["stale"]:
        problems.append(f"flags stale (version {flags['version']})")
    if flags["journaled_rollbacks"]:
        problems.append(f"{len(flags['journaled_rollbacks'])} journaled rollback(s) to replay")
    if flags.get("migrations_pending"):
        problems.append("migrations pending")
    if not problems and flags["status"] != "healthy":
        problems.append(flags.get("error") or "flags unhealthy")
    return ", ".join(problems) or "healthy"


def flags_health(request: Request, runtime: RuntimeDep) -> dict[str, Any]:
    """The flag subsystem's health with what start-up left undone: migrations that wait for
    the database keep it unhealthy (see backend.db.outage)."""
    pending: PendingInit | None = getattr(request.app.state, "pending_init", None)
    body = runtime.health()
    body["migrations_pending"] = pending is not None and pending.pending
    if body["migrations_pending"]:
        body["status"] = "unhealthy"
    body["summary"] = summary(body, database_ok=body["store_reachable"])
    return body


def primary_health(settings: Settings) -> dict[str, Any]:
    """Which database is the primary and what the last switch did (read from the primary
    file each time: `pcm-ops db sync` clears its warning while the app runs)."""
    state = primary_file.read(settings.primary_state_file)
    pinned = settings.database_url is not None
    return {
        "primary": state.backend,
        "pinned_by_database_url": pinned,
        "switch": (
            "pinned by DATABASE_URL: postgresql_support only reports"
            if pinned
            else state.note or None
        ),
        "synced_at": state.synced_at,
        "unsynced_since": None if pinned else state.unsynced_since,
        "warning": None if pinned else unsynced_warning(state),
    }


def database_health(sessions: SessionsDep) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        with sessions() as s:
            s.execute(text("SELECT 1"))
        ok, error = True, None
    except SQLAlchemyError as exc:
        ok, error = False, str(exc).splitlines()[0]
    bind = sessions.kw["bind"]
    return {
        "ok": ok,
        "backend": bind.dialect.name,
        "latency_ms": round((time.perf_counter() - started) * 1000, 2),
        "error": error,
    }


@router.get("/api/health", summary="Application health (public)")
def health(request: Request, runtime: RuntimeDep, sessions: SessionsDep) -> JSONResponse:
    app = request.app
    database = {**database_health(sessions), **primary_health(app.state.settings)}
    flags = flags_health(request, runtime)
    healthy = database["ok"] and flags["status"] == "healthy"
    body = {
        "status": "healthy" if healthy else "unhealthy",
        "version": app.version,
        "uptime_seconds": round(time.monotonic() - app.state.started, 1),
        "database": database,
        "flags": flags,
        "flags_version": flags["version"],
        "rollback_mode": runtime.rollback_mode,
        "journaled_rollbacks": flags["journaled_rollbacks"],
        "migrations_pending": flags["migrations_pending"],
        "summary": summary(flags, database_ok=database["ok"]),
    }
    if database["warning"] and healthy:
        body["summary"] = f"serving, with a warning: {database['warning']}"
    return JSONResponse(body, status_code=200 if healthy else 503)
