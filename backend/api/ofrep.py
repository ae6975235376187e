"""OpenFeature Remote Evaluation Protocol (OFREP) endpoints: any standard OpenFeature client
with the OFREP provider reads our flags (`OFREPProvider("http://host:8500", headers_factory=
lambda: {"Authorization": "Bearer …"})`).

Our flags are booleans that every caller sees alike, so the evaluation context is accepted
(it must be a JSON object) and does not change the value. The reason tells where the value
comes from: STATIC (the stored value, or an environment override), DISABLED (rollback mode
serves every flag at its rollback value) or STALE (served from the last-known state or a
journaled rollback while the database is unreachable). Errors use OFREP's own bodies
(`errorCode`, `errorDetails`), not the console's problem+json, because OFREP providers read
them.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from backend.api.deps import Viewer
from backend.api.responses import AUTHENTICATED, BODY, error
from backend.flags import FlagState, Snapshot, current

router = APIRouter(prefix="/ofrep/v1", tags=["OpenFeature (OFREP)"], responses=AUTHENTICATED)

NAME = "pcm-ops-tools"
MIN_POLLING_MS = 1000


def evaluation(state: FlagState, snap: Snapshot) -> dict[str, Any]:
    """One flag as an OFREP evaluation success."""
    if snap.from_last_known_state or state.source == "journal":
        reason = "STALE"
    elif state.source == "rollback_mode":
        reason = "DISABLED"
    else:
        reason = "STATIC"
    return {
        "key": state.name,
        "value": state.enabled,
        "reason": reason,
        "variant": "on" if state.enabled else "off",
        "metadata": {
            "source": state.source,
            "flagsVersion": snap.version,
            "rollbackValue": state.rollback_value,
            "requiresRestart": state.requires_restart,
            "pendingRestart": state.pending_restart,
            "phase": state.phase,
            "risk": state.risk,
        },
    }


async def _request_error(request: Request) -> tuple[str, str] | None:
    """The OFREP error code and details when the body is not an evaluation request."""
    raw = await request.body()
    if not raw.strip():
        return None
    try:
        body = json.loads(raw)
    except ValueError as exc:
        return "PARSE_ERROR", f"the body is not JSON: {exc}"
    if not isinstance(body, dict):
        return "PARSE_ERROR", 'the body must be a JSON object, like {"context": {...}}'
    context = body.get("context")
    if context is not None and not isinstance(context, dict):
        return "INVALID_CONTEXT", "context must be a JSON object"
    return None


@router.post(
    "/evaluate/flags/{key}",
    summary="Evaluate one flag (OFREP core)",
    responses={
        400: error(400, "OFREP PARSE_ERROR or INVALID_CONTEXT (errorCode, errorDetails)"),
        404: error(404, "OFREP FLAG_NOT_FOUND (errorCode, errorDetails)"),
        **BODY,
    },
)
async def evaluate_flag(key: str, request: Request, _: Viewer) -> JSONResponse:
    problem = await _request_error(request)
    if problem is not None:
        code, details = problem
        return JSONResponse(
            {"key": key, "errorCode": code, "errorDetails": details}, status_code=400
        )
    snap = current()
    state = snap.flags.get(key)
    if state is None:
        return JSONResponse(
            {"key": key[:200], "errorCode": "FLAG_NOT_FOUND", "errorDetails": "no such flag"},
            status_code=404,
        )
    return JSONResponse(evaluation(state, snap))


@router.post(
    "/evaluate/flags",
    summary="Evaluate every flag (OFREP core), with ETag",
    responses={
        304: {"description": "Not modified since the ETag sent in If-None-Match"},
        400: error(400, "OFREP PARSE_ERROR or INVALID_CONTEXT (errorCode, errorDetails)"),
        **BODY,
    },
)
async def evaluate_flags(request: Request, _: Viewer) -> Response:
    problem = await _request_error(request)
    if problem is not None:
        code, details = problem
        return JSONResponse({"errorCode": code, "errorDetails": details}, status_code=400)
    snap = current()
    payload = json.dumps(
        {"flags": [evaluation(state, snap) for state in snap.flags.values()]},
        separators=(",", ":"),
    ).encode()
    etag = f'"{hashlib.sha256(payload).hexdigest()[:32]}"'
    matches = {tag.strip() for tag in request.headers.get("if-none-match", "").split(",")}
    if etag in matches or "*" in matches:
        return Response(status_code=304, headers={"ETag": etag})
    return Response(payload, media_type="application/json", headers={"ETag": etag})


@router.get("/configuration", summary="What this flag system supports (OFREP extension)")
def configuration(_: Viewer) -> dict[str, Any]:
    return {
        "name": NAME,
        "capabilities": {
            "cacheInvalidation": {
                "polling": {"enabled": True, "minPollingIntervalMs": MIN_POLLING_MS}
            },
            "flagEvaluation": {"supportedTypes": ["boolean"]},
        },
    }
