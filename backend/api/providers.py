"""/api/providers: the AWS accounts the team works with (reading them proves the DB answers)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from sqlalchemy import select

from backend.api.deps import DbDep, Viewer
from backend.aws.models import Provider

router = APIRouter(prefix="/api/providers", tags=["providers"])


def provider_out(p: Provider) -> dict[str, Any]:
    return {
        "id": p.id,
        "name": p.name,
        "account_id": p.account_id,
        "default_region": p.default_region,
        "description": p.description,
        "enabled": p.enabled,
        "created_at": p.created_at.isoformat(),
    }


@router.get("")
def list_providers(_: Viewer, db: DbDep) -> dict[str, Any]:
    rows = db.scalars(select(Provider).order_by(Provider.name))
    items = [provider_out(p) for p in rows]
    return {"total": len(items), "items": items}
