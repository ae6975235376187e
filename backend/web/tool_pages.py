"""/tools: the AWS tools' catalog, a run form per tool for operators, each run's table with its
CSV/JSON downloads (the API's download endpoint), and the past runs.

The HTML lives at /tools rather than /aws/tools: /aws/tools is the runbook's JSON catalog, and
curl, scripts and `verify` read it with tokens and cookies alike; one URL, one representation.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from backend.api.aws_credentials import CallerDep
from backend.api.aws_errors import status_of
from backend.api.deps import MAX_DB_INT, DbDep, RowId
from backend.aws import caller as use_cases
from backend.aws import runs as service
from backend.aws.caller import AwsCaller
from backend.aws.errors import AwsError, CredentialsNotFound
from backend.aws.providers import list_providers
from backend.aws.schemas import RunRequest
from backend.aws.tools import CATALOG, Tool
from backend.security.credentials_crypto import KeyRingError
from backend.security.tokens import Principal
from backend.web.access import PageOperator, PageViewer
from backend.web.forms import FieldErrors, field_errors
from backend.web.templating import page

router = APIRouter(include_in_schema=False)
RunId = RowId
PAGE_SIZE = 50


@dataclass(frozen=True)
class Param:
    """One input of a tool's run form, from the JSON schema of the tool's parameters."""

    name: str
    kind: str  # "int", "choices", "int_list" or "text"
    title: str
    description: str
    default: Any
    choices: list[str] = field(default_factory=list)
    minimum: int | None = None
    maximum: int | None = None


def params_of(tool: Tool) -> list[Param]:
    out = []
    for name, spec in tool.describe()["params"].items():
        items = spec.get("items", {})
        if spec.get("type") == "integer":
            kind = "int"
        elif spec.get("type") == "array" and "enum" in items:
            kind = "choices"
        elif spec.get("type") == "array":
            kind = "int_list"
        else:
            kind = "text"
        default = tool.params.model_fields[name].get_default(call_default_factory=True)
        out.append(
            Param(
                name=name,
                kind=kind,
                title=str(spec.get("title", name)),
                description=str(spec.get("description", "")),
                default=default,
                choices=list(items.get("enum", [])),
                minimum=spec.get("minimum"),
                maximum=spec.get("maximum"),
            )
        )
    return out


@dataclass
class RunForm:
    """What was typed into a tool's run form, and what was wrong with it."""

    provider_id: str = ""
    values: dict[str, Any] = field(default_factory=dict)
    errors: FieldErrors = field(default_factory=dict)


def _params_from(form: Any, specs: list[Param]) -> dict[str, Any]:
    """The parameters the operator filled in; a blank input leaves the tool's default."""
    params: dict[str, Any] = {}
    for spec in specs:
        if spec.kind == "choices":
            params[spec.name] = [str(v) for v in form.getlist(f"p_{spec.name}")]
            continue
        raw = str(form.get(f"p_{spec.name}", "")).strip()
        if not raw:
            continue
        params[spec.name] = (
            [v for v in re.split(r"[\s,]+", raw) if v] if spec.kind == "int_list" else raw
        )
    return params


def _tool_page(
    request: Request,
    db: Any,
    tool: Tool,
    form: RunForm | None = None,
    *,
    error: str | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    total, runs = service.list_runs(db=db, limit=PAGE_SIZE, offset=0, tool=tool.name)
    return page(
        request,
        "tool.html",
        status_code,
        tool=tool,
        params=params_of(tool),
        providers=[p for p in list_providers(db=db) if p.enabled],
        form=form or RunForm(),
        runs=runs,
        total=total,
        error=error,
    )


@router.get("/tools", response_class=HTMLResponse)
def tools_page(
    request: Request,
    _: PageViewer,
    db: DbDep,
    offset: Annotated[int, Query(ge=0, le=MAX_DB_INT)] = 0,
) -> HTMLResponse:
    total, runs = service.list_runs(db=db, limit=PAGE_SIZE, offset=offset)
    return page(
        request,
        "tools.html",
        tools=list(CATALOG.values()),
        runs=runs,
        total=total,
        offset=offset,
        page_size=PAGE_SIZE,
    )


@router.get("/tools/runs/{run_id}", response_class=HTMLResponse)
def run_page(request: Request, run_id: RunId, _: PageViewer, db: DbDep) -> Response:
    try:
        run = service.get_run(db=db, run_id=run_id)
    except AwsError as exc:
        return page(request, "tools.html", 404, tools=[], runs=[], total=0, error=str(exc))
    return page(request, "run.html", run=run, tool=CATALOG.get(run.tool))


@router.get("/tools/{tool_name}", response_class=HTMLResponse)
def tool_page(
    request: Request, tool_name: Annotated[str, Path(max_length=64)], _: PageViewer, db: DbDep
) -> Response:
    tool = CATALOG.get(tool_name)
    if tool is None:
        return page(
            request, "tools.html", 404, tools=[], runs=[], total=0, error=f"no tool {tool_name!r}"
        )
    return _tool_page(request, db, tool)


@router.post("/tools/{tool_name}/runs", response_class=HTMLResponse)
async def run_tool(
    request: Request,
    tool_name: Annotated[str, Path(max_length=64)],
    who: PageOperator,
    caller: CallerDep,
    db: DbDep,
) -> Response:
    tool = CATALOG.get(tool_name)
    if tool is None:
        return page(
            request, "tools.html", 404, tools=[], runs=[], total=0, error=f"no tool {tool_name!r}"
        )
    submitted = await request.form()
    form = RunForm(
        provider_id=str(submitted.get("provider_id", "")),
        values=_params_from(submitted, params_of(tool)),
    )
    try:
        body = RunRequest.model_validate({"provider_id": form.provider_id, "params": form.values})
        result = await run_in_threadpool(_run, who, caller, body, tool.name)
    except ValidationError as exc:
        form.errors = field_errors(exc.errors())
        return await run_in_threadpool(_tool_page, request, db, tool, form, status_code=422)
    except RequestValidationError as exc:
        form.errors = field_errors(exc.errors(), skip=2)  # ("body", "params", <field>)
        return await run_in_threadpool(_tool_page, request, db, tool, form, status_code=422)
    except (AwsError, KeyRingError) as exc:
        if isinstance(exc, CredentialsNotFound):
            form.errors = {"provider_id": f"{exc}: store them on the Credentials page"}
        return await run_in_threadpool(
            _tool_page, request, db, tool, form, error=str(exc), status_code=status_of(exc)
        )
    return RedirectResponse(f"/tools/runs/{result['id']}", status_code=303)


def _run(who: Principal, caller: AwsCaller, body: RunRequest, tool_name: str) -> dict[str, Any]:
    """The API's own use case: parameters checked, provider enabled, run recorded."""
    try:
        run = use_cases.run_tool(caller=caller, tool_name=tool_name, request=body, actor=who.name)
    except ValidationError as exc:  # the tool's parameters: same shape as the API's 422
        raise RequestValidationError(
            [{**e, "loc": ("body", "params", *e["loc"])} for e in exc.errors()]
        ) from None
    return {"id": run.id}
