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

router = APIRouter(tags=["health"], responses=PUBLIC)


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
    database = database_health(sessions)
    flags = runtime.health()
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
    }
    return JSONResponse(body, status_code=200 if healthy else 503)
