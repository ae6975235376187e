"""POST /records/{id}/acknowledge: the banner's button (operator role, CSRF). The banner itself
is rendered by base.html from backend/web/rollback_alert.py."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form
from fastapi.responses import RedirectResponse

from backend.api.deps import RowId, SessionsDep
from backend.flags.acknowledgements import acknowledge
from backend.web.access import PageOperator
from backend.web.signin_pages import safe_next

router = APIRouter(include_in_schema=False)


@router.post("/records/{record_id}/acknowledge")
def acknowledge_form(
    record_id: RowId,
    who: PageOperator,
    sessions: SessionsDep,
    next: Annotated[str, Form(max_length=2000)] = "/",
) -> RedirectResponse:
    acknowledge(sessions, record_id=record_id, actor=who.name, method="ui")
    return RedirectResponse(safe_next(next), status_code=303)
