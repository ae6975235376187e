"""/aws/tools: the catalog of AWS tools."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from backend.api.deps import Viewer

router = APIRouter(prefix="/aws", tags=["aws"])


@router.get("/tools")
def tools(_: Viewer) -> dict[str, Any]:
    # The catalog is filled by the AWS issue; an honest empty list until then.
    return {"tools": [], "total": 0}
