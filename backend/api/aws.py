"""/aws/tools, /api/aws/… and /api/auth/aws-check-credentials: the AWS tools of the console."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Response, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from backend.api.aws_credentials import CallerDep
from backend.api.aws_errors import AwsRoute
from backend.api.deps import DbDep, Offset, Operator, RowId, RowIdQuery, Viewer, body_doc, json_body
from backend.api.responses import AUTHENTICATED, BODY, CONFLICT, NOT_FOUND
from backend.aws import caller as use_cases
from backend.aws import runs as service
from backend.aws.schemas import RunRequest
from backend.aws.tools import CATALOG

router = APIRouter(tags=["aws"], route_class=AwsRoute, responses=AUTHENTICATED)


def catalog() -> dict[str, Any]:
    tools = [t.describe() for t in CATALOG.values()]
    return {"tools": tools, "total": len(tools)}


# The run's table as a file: CSV by default, JSON with ?format=json.
DOWNLOAD = {
    "description": "The run's table as a file",
    "content": {"text/csv": {"schema": {"type": "string"}}, "application/json": {}},
}


@router.get("/aws/tools")
def tools(_: Viewer) -> dict[str, Any]:
    """The catalog of read-only AWS tools."""
    return catalog()


@router.get("/api/aws/tools")
def api_tools(_: Viewer) -> dict[str, Any]:
    return catalog()


@router.post(
    "/api/aws/tools/{tool_name}/runs",
    status_code=status.HTTP_201_CREATED,
    responses={**NOT_FOUND, **CONFLICT, **BODY},
    openapi_extra=body_doc(RunRequest),
)
def run_tool(
    who: Operator,
    caller: CallerDep,
    body: Annotated[RunRequest, Depends(json_body(RunRequest))],
    tool_name: str = Path(max_length=64),
) -> dict[str, Any]:
    """Run a tool with the caller's credentials for the provider; the run is recorded."""
    try:
        run = use_cases.run_tool(caller=caller, tool_name=tool_name, request=body, actor=who.name)
    except ValidationError as exc:
        raise RequestValidationError(
            [{**e, "loc": ("body", "params", *e["loc"])} for e in exc.errors()]
        ) from None
    return {**service.summary(run), "columns": run.columns, "rows": run.rows}


@router.get("/api/aws/runs")
def list_runs(
    _: Viewer,
    db: DbDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Offset = 0,
    tool: Annotated[str | None, Query(max_length=64)] = None,
) -> dict[str, Any]:
    total, rows = service.list_runs(db=db, limit=limit, offset=offset, tool=tool)
    return {"total": total, "items": [service.summary(r) for r in rows]}


@router.get("/api/aws/runs/{run_id}", responses=NOT_FOUND)
def get_run(_: Viewer, db: DbDep, run_id: RowId) -> dict[str, Any]:
    run = service.get_run(db=db, run_id=run_id)
    return {**service.summary(run), "columns": run.columns, "rows": run.rows}


@router.get("/api/aws/runs/{run_id}/download", responses={200: DOWNLOAD, **NOT_FOUND})
def download_run(
    _: Viewer,
    db: DbDep,
    run_id: RowId,
    format: Literal["json", "csv"] = "csv",
) -> Response:
    """The run's table as a file: CSV (header first) or JSON."""
    run = service.get_run(db=db, run_id=run_id)
    filename = f"{run.tool}-run{run.id}.{format}"
    headers = {"Content-Disposition": f'attachment; filename="{filename}"'}
    if format == "csv":
        return Response(service.to_csv(run), media_type="text/csv; charset=utf-8", headers=headers)
    body = {**service.summary(run), "columns": run.columns, "rows": run.rows}
    return JSONResponse(body, headers=headers)


@router.get("/api/auth/aws-check-credentials", responses={**NOT_FOUND, **CONFLICT})
def aws_check_credentials(
    caller: CallerDep,
    provider_id: RowIdQuery = None,
) -> dict[str, Any]:
    """Whether the caller's stored credentials work (STS GetCallerIdentity)."""
    return use_cases.check_caller_credentials(caller=caller, provider_id=provider_id)
