"""GET /metrics: Prometheus text exposition (any signed-in caller; Prometheus sends a token with
`authorization: {credentials: ...}` in its scrape config)."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from backend.api.deps import RuntimeDep, SessionsDep, Viewer
from backend.api.responses import AUTHENTICATED
from backend.metrics.prometheus import registry_for

router = APIRouter(tags=["metrics"], responses=AUTHENTICATED)


@router.get(
    "/metrics",
    summary="Prometheus metrics: flags, rollbacks, request latency",
    response_class=PlainTextResponse,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
)
def metrics(_: Viewer, runtime: RuntimeDep, sessions: SessionsDep) -> Response:
    return Response(
        generate_latest(registry_for(runtime, sessions)), media_type=CONTENT_TYPE_LATEST
    )
