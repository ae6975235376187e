"""/api/feature-flags: read, toggle, roll back, audit. Thin: every rule lives in backend.flags."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy import func, select

from backend.api import health
from backend.api.deps import DbDep, Offset, Operator, RuntimeDep, Viewer, body_doc, json_body
from backend.api.responses import AUTHENTICATED, BODY, CONFLICT, NOT_FOUND
from backend.flags import FlagState, current
from backend.flags.audit import event_as_dict, verify_chain
from backend.flags.models import AuditEvent

router = APIRouter(prefix="/api/feature-flags", tags=["feature flags"], responses=AUTHENTICATED)


class ToggleRequest(BaseModel):
    """Lenient as written; `json_body` makes it strict while pydantic_v2_schemas is on."""

    flag_name: str = Field(min_length=1, description="name of the flag")
    enabled: bool
    reason: str | None = Field(default=None, max_length=2000)


class RollbackRequest(BaseModel):
    reason: str | None = Field(default=None, max_length=2000)


def flag_out(state: FlagState) -> dict[str, Any]:
    return state.as_dict()


@router.get("", summary="All flags with their effective values")
def list_flags(_: Viewer) -> dict[str, Any]:
    snap = current()
    return {
        "version": snap.version,
        "rollback_mode": snap.rollback_mode,
        "from_last_known_state": snap.from_last_known_state,
        # Rollbacks made while the database was down, not yet replayed into it.
        "journaled_rollbacks": list(snap.journaled),
        "flags": [flag_out(f) for f in snap.flags.values()],
    }


@router.get("/health", summary="Flag subsystem health (public)")
def flags_health(request: Request, runtime: RuntimeDep) -> JSONResponse:
    body = health.flags_health(request, runtime)
    return JSONResponse(body, status_code=200 if body["status"] == "healthy" else 503)


@router.get("/audit", summary="Audit events, newest first")
def audit(
    _: Viewer,
    db: DbDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Offset = 0,
    flag: Annotated[str | None, Query(max_length=100)] = None,
    method: Annotated[str | None, Query(max_length=20)] = None,
    actor: Annotated[str | None, Query(max_length=200)] = None,
) -> dict[str, Any]:
    query = select(AuditEvent)
    if flag:
        query = query.where(AuditEvent.flag_name == flag)
    if method:
        query = query.where(AuditEvent.method == method)
    if actor:
        query = query.where(AuditEvent.actor == actor)
    total = db.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = db.scalars(query.order_by(AuditEvent.id.desc()).limit(limit).offset(offset))
    return {
        "total": total,
        "limit": limit,
        "offset": offset,
        "items": [event_as_dict(e) for e in rows],
    }


@router.get(
    "/audit/verify",
    summary="Verify the audit chain: hashes, store head, signed checkpoints (one snapshot)",
)
def audit_verify(_: Viewer, db: DbDep) -> dict[str, object]:
    return verify_chain(db).as_dict()


@router.post(
    "/toggle",
    summary="Enable or disable one flag",
    openapi_extra=body_doc(ToggleRequest),
    responses={**NOT_FOUND, **CONFLICT, **BODY},
)
def toggle(
    who: Operator,  # first: an anonymous caller gets 401 before the body is looked at
    runtime: RuntimeDep,
    body: Annotated[ToggleRequest, Depends(json_body(ToggleRequest))],
) -> dict[str, Any]:
    result = runtime.toggle(
        body.flag_name, body.enabled, actor=who.name, method="api", reason=body.reason or ""
    )
    return {
        "flag": flag_out(result.flag),
        "previous": result.old,
        # False when the flag had that value already: nothing was written (no audit event,
        # no new version) and `version` is the store's.
        "changed": result.changed,
        "message": result.message,
        "version": result.version,
        # Set when the database was unreachable: the change is journaled and replayed later.
        "journal_id": result.journal_id,
        "note": result.note,
    }


@router.post(
    "/emergency-rollback",
    summary="Every flag to its rollback value, at once",
    responses={**CONFLICT, **BODY},
)
def emergency_rollback(
    runtime: RuntimeDep,
    who: Operator,
    body: Annotated[RollbackRequest | None, Body()] = None,
) -> dict[str, Any]:
    reason = (body.reason if body else None) or "emergency rollback"
    return runtime.rollback(None, actor=who.name, method="emergency", reason=reason).as_dict()


@router.get("/{name}", summary="One flag", responses=NOT_FOUND)
def get_flag(name: str, runtime: RuntimeDep, _: Viewer) -> dict[str, Any]:
    return flag_out(runtime.get(name))


@router.get(
    "/{name}/history", summary="Audit events of one flag, newest first", responses=NOT_FOUND
)
def history(
    name: str,
    runtime: RuntimeDep,
    db: DbDep,
    _: Viewer,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Offset = 0,
) -> dict[str, Any]:
    runtime.get(name)  # unknown names: FlagNotFound, mapped to 404
    query = select(AuditEvent).where(AuditEvent.flag_name == name)
    total = db.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = db.scalars(query.order_by(AuditEvent.id.desc()).limit(limit).offset(offset))
    return {
        "flag": name,
        "total": total,
        "limit": limit,
        "offset": offset,
        "items": [event_as_dict(e) for e in rows],
    }


@router.post(
    "/{name}/rollback",
    summary="One flag to its rollback value, with a record (none when it had that value)",
    responses={**NOT_FOUND, **CONFLICT, **BODY},
)
def rollback_flag(
    name: str,
    runtime: RuntimeDep,
    who: Operator,
    body: Annotated[RollbackRequest | None, Body()] = None,
) -> dict[str, Any]:
    reason = (body.reason if body else None) or f"rollback of {name}"
    result = runtime.rollback([name], actor=who.name, method="feature_flag", reason=reason)
    return result.as_dict()
