"""/flags: every flag, a switch with a reason, per-flag rollback, and emergency rollback with
confirmation. Every change goes through FlagRuntime, like the API's and the CLI's."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response

from backend.api.deps import RuntimeDep
from backend.flags import FlagError, current
from backend.web.access import PageOperator, PageViewer
from backend.web.notices import NoticeCode, NoticeSubject, notice_text, redirect_with_notice
from backend.web.templating import page

router = APIRouter(include_in_schema=False)
Reason = Annotated[str, Form(max_length=2000)]


def _flags_page(
    request: Request,
    runtime: RuntimeDep,
    *,
    notice: str | None = None,
    error: str | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    snap = current()
    flags = sorted(snap.flags.values(), key=lambda f: (f.phase, f.name))
    return page(
        request,
        "flags.html",
        status_code,
        flags=flags,
        snapshot=snap,
        notice=notice,
        error=error,
    )


@router.get("/flags", response_class=HTMLResponse)
def flags_page(
    request: Request,
    _: PageViewer,
    runtime: RuntimeDep,
    notice: NoticeCode = None,
    subject: NoticeSubject = None,
) -> HTMLResponse:
    known: dict[str, dict[str, str]] = {name: {} for name in current().flags}
    return _flags_page(request, runtime, notice=notice_text(notice, subject, known))


@router.post("/flags/{name}/toggle", response_class=HTMLResponse)
def toggle_form(
    request: Request,
    name: str,
    who: PageOperator,
    runtime: RuntimeDep,
    enabled: Annotated[str, Form(pattern="^(true|false)$")],
    reason: Reason = "",
) -> Response:
    try:
        result = runtime.toggle(
            name, enabled == "true", actor=who.name, method="ui", reason=reason.strip()
        )
    except FlagError as exc:
        code = 404 if "unknown" in str(exc) else 409
        return _flags_page(request, runtime, error=str(exc), status_code=code)
    state = "on" if result.new else "off"
    notice = f"flag_{state}" if result.old != result.new else f"flag_already_{state}"
    return redirect_with_notice("/flags", notice, name)


@router.post("/flags/{name}/rollback", response_class=HTMLResponse)
def rollback_form(
    request: Request,
    name: str,
    who: PageOperator,
    runtime: RuntimeDep,
    reason: Reason = "",
) -> Response:
    try:
        result = runtime.rollback(
            [name],
            actor=who.name,
            method="feature_flag",
            reason=reason.strip() or f"rollback of {name} from the console",
        )
    except FlagError as exc:
        return _flags_page(request, runtime, error=str(exc), status_code=404)
    if result.record_id is None and result.journal_id is None:  # nothing changed or recorded
        return redirect_with_notice("/flags", "flag_at_rollback_value", name)
    return page(request, "rollback_result.html", result=result, scope=name)


@router.get("/rollback/emergency", response_class=HTMLResponse)
def emergency_confirm(request: Request, _: PageOperator) -> HTMLResponse:
    snap = current()
    to_change = [f for f in snap.flags.values() if f.stored_enabled != f.rollback_value]
    return page(request, "emergency_confirm.html", to_change=to_change, error=None)


@router.post("/rollback/emergency", response_class=HTMLResponse)
def emergency_form(
    request: Request,
    who: PageOperator,
    runtime: RuntimeDep,
    reason: Reason = "",
    confirm: Annotated[str, Form()] = "",
) -> HTMLResponse:
    if confirm != "yes" or not reason.strip():
        snap = current()
        to_change = [f for f in snap.flags.values() if f.stored_enabled != f.rollback_value]
        return page(
            request,
            "emergency_confirm.html",
            400,
            to_change=to_change,
            error="Tick the confirmation box and give a reason to roll back.",
        )
    result = runtime.rollback(None, actor=who.name, method="emergency", reason=reason.strip())
    return page(request, "rollback_result.html", result=result, scope="every flag")
