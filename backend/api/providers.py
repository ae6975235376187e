"""/api/providers: the AWS accounts the team works with (reading them proves the DB answers)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Response, status

from backend.api.aws_errors import AwsRoute
from backend.api.deps import Admin, DbDep, RowId, Viewer, body_doc, json_body
from backend.api.responses import AUTHENTICATED, BODY, CONFLICT, NOT_FOUND
from backend.aws import providers as service
from backend.aws.models import Provider
from backend.aws.regions import known_regions
from backend.aws.schemas import ProviderCreate, ProviderUpdate

router = APIRouter(
    prefix="/api/providers", tags=["providers"], route_class=AwsRoute, responses=AUTHENTICATED
)


def provider_out(p: Provider) -> dict[str, Any]:
    return {
        "id": p.id,
        "name": p.name,
        "account_id": p.account_id,
        "default_region": p.default_region,
        "regions": p.regions or [p.default_region],
        "description": p.description,
        "enabled": p.enabled,
        "created_at": p.created_at.isoformat(),
    }


@router.get("")
def list_providers(_: Viewer, db: DbDep) -> dict[str, Any]:
    items = [provider_out(p) for p in service.list_providers(db=db)]
    return {"total": len(items), "items": items}


@router.get("/regions")
def list_regions(_: Viewer) -> dict[str, Any]:
    """The regions a provider may use: botocore's own list."""
    return {"regions": sorted(known_regions())}


@router.get("/{provider_id:int}", responses=NOT_FOUND)
def get_provider(_: Viewer, db: DbDep, provider_id: RowId) -> dict[str, Any]:
    return provider_out(service.get_provider(db=db, provider_id=provider_id))


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    responses={**CONFLICT, **BODY},
    openapi_extra=body_doc(ProviderCreate),
)
def create_provider(
    _: Admin, db: DbDep, body: Annotated[ProviderCreate, Depends(json_body(ProviderCreate))]
) -> dict[str, Any]:
    with db.begin():
        provider = service.create_provider(db=db, data=body)
    return provider_out(provider)


@router.patch(
    "/{provider_id:int}",
    responses={**NOT_FOUND, **CONFLICT, **BODY},
    openapi_extra=body_doc(ProviderUpdate),
)
def update_provider(
    _: Admin,
    db: DbDep,
    body: Annotated[ProviderUpdate, Depends(json_body(ProviderUpdate))],
    provider_id: RowId,
) -> dict[str, Any]:
    with db.begin():
        provider = service.update_provider(db=db, provider_id=provider_id, data=body)
    return provider_out(provider)


@router.delete("/{provider_id:int}", status_code=status.HTTP_204_NO_CONTENT, responses=NOT_FOUND)
def delete_provider(_: Admin, db: DbDep, provider_id: RowId) -> Response:
    with db.begin():
        service.delete_provider(db=db, provider_id=provider_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
