"""/aws/tools, /api/aws/… and /api/auth/aws-check-credentials: the AWS tools of the console."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Response, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from backend.api.aws_credentials import CallerDep, provider_secret
from backend.api.aws_errors import AwsRoute
from backend.api.deps import MAX_DB_INT, DbDep, Offset, Operator, Viewer
from backend.aws import runs as service
from backend.aws.clients import AwsConnector
from backend.aws.credentials import list_credentials
from backend.aws.errors import CredentialsNotFound, ProviderDisabled
from backend.aws.providers import list_providers
from backend.aws.schemas import RunRequest
from backend.aws.tools import CATALOG, get_tool
from backend.aws.verification import check_credentials

router = APIRouter(tags=["aws"], route_class=AwsRoute)
RunId = Path(ge=1, le=MAX_DB_INT)


def catalog() -> dict[str, Any]:
    tools = [t.describe() for t in CATALOG.values()]
    return {"tools": tools, "total": len(tools)}


@router.get("/aws/tools")
def tools(_: Viewer) -> dict[str, Any]:
    """The catalog of read-only AWS tools."""
    return catalog()


@router.get("/api/aws/tools")
def api_tools(_: Viewer) -> dict[str, Any]:
    return catalog()


@router.post("/api/aws/tools/{tool_name}/runs", status_code=status.HTTP_201_CREATED)
def run_tool(
    who: Operator, caller: CallerDep, body: RunRequest, tool_name: str = Path(max_length=64)
) -> dict[str, Any]:
    """Run a tool with the caller's credentials for the provider; the run is recorded."""
    tool = get_tool(tool_name)
    try:
        params = tool.params.model_validate(body.params)
    except ValidationError as exc:
        raise RequestValidationError(
            [{**e, "loc": ("body", "params", *e["loc"])} for e in exc.errors()]
        ) from None
    provider, secret = provider_secret(caller, body.provider_id)
    if not provider.enabled:
        raise ProviderDisabled(provider.name)
    regions = body.regions or list(provider.regions or [provider.default_region])
    run = service.execute(
        tool=tool,
        provider=provider,
        regions=regions,
        params=params,
        aws=AwsConnector(caller.settings, secret),
        workers=caller.settings.aws_max_workers,
        actor=who.name,
    )
    with caller.db.begin():
        caller.db.add(run)
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


@router.get("/api/aws/runs/{run_id}")
def get_run(_: Viewer, db: DbDep, run_id: int = RunId) -> dict[str, Any]:
    run = service.get_run(db=db, run_id=run_id)
    return {**service.summary(run), "columns": run.columns, "rows": run.rows}


@router.get("/api/aws/runs/{run_id}/download")
def download_run(
    _: Viewer,
    db: DbDep,
    run_id: int = RunId,
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


@router.get("/api/auth/aws-check-credentials")
def aws_check_credentials(
    caller: CallerDep,
    provider_id: Annotated[int | None, Query(ge=1, le=MAX_DB_INT)] = None,
) -> dict[str, Any]:
    """Whether the caller's stored credentials work (STS GetCallerIdentity)."""
    if provider_id is None:
        # The caller's first provider with credentials, else the first provider.
        with caller.db.begin():
            stored = list_credentials(db=caller.db, owner=caller.owner, session=caller.session)
            providers = list_providers(db=caller.db)
        if stored:
            provider_id = stored[0].provider_id
        elif providers:
            provider_id = providers[0].id
        else:
            return _not_configured(caller.owner, "no provider is defined yet")
    try:
        provider, secret = provider_secret(caller, provider_id)
    except CredentialsNotFound as exc:
        return _not_configured(caller.owner, str(exc), provider_id)
    result = check_credentials(aws=AwsConnector(caller.settings, secret), provider=provider)
    return {
        **result,
        "configured": True,
        "provider_id": provider.id,
        "provider": provider.name,
        "access_key_id": f"****{secret.hint}",
    }


def _not_configured(owner: str, error: str, provider_id: int | None = None) -> dict[str, Any]:
    return {
        "valid": False,
        "configured": False,
        "account": None,
        "arn": None,
        "error": error,
        "provider_id": provider_id,
    }
