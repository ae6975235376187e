"""GET /metrics: Prometheus text exposition (any signed-in caller; Prometheus sends a token with
`authorization: {credentials: ...}` in its scrape config)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST

from backend.api.deps import Viewer
from backend.api.responses import AUTHENTICATED
from backend.metrics.prometheus import PrometheusExport

router = APIRouter(tags=["metrics"], responses=AUTHENTICATED)


@router.get(
    "/metrics",
    summary="Prometheus metrics: flags, rollbacks, request latency and errors, processes",
    response_class=PlainTextResponse,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
)
def metrics(_: Viewer, request: Request) -> Response:
    export: PrometheusExport = request.app.state.prometheus
    return Response(export.render(), media_type=CONTENT_TYPE_LATEST)
