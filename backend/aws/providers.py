"""Providers: the AWS accounts the team works with. Plain functions; the caller commits."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from backend.aws.errors import ProviderNameTaken, ProviderNotFound
from backend.aws.models import AwsCredential, Provider
from backend.aws.schemas import ProviderCreate, ProviderUpdate


def list_providers(*, db: Session) -> Sequence[Provider]:
    """Every provider, by name."""
    return db.scalars(select(Provider).order_by(Provider.name)).all()


def get_provider(*, db: Session, provider_id: int) -> Provider:
    """One provider, or ProviderNotFound."""
    provider = db.get(Provider, provider_id)
    if provider is None:
        raise ProviderNotFound(provider_id)
    return provider


def _check_name_free(db: Session, name: str, provider_id: int | None = None) -> None:
    found = db.scalar(select(Provider.id).where(Provider.name == name))
    if found is not None and found != provider_id:
        raise ProviderNameTaken(name)


def create_provider(*, db: Session, data: ProviderCreate) -> Provider:
    """Add a provider; its name must be free."""
    _check_name_free(db, data.name)
    provider = Provider(**data.model_dump())
    db.add(provider)
    db.flush()
    return provider


def update_provider(*, db: Session, provider_id: int, data: ProviderUpdate) -> Provider:
    """Change the given fields of a provider."""
    provider = get_provider(db=db, provider_id=provider_id)
    changes = data.changes()
    if "name" in changes:
        _check_name_free(db, changes["name"], provider_id)
    for field, value in changes.items():
        setattr(provider, field, value)
    # The default region is always scanned.
    provider.regions = list(dict.fromkeys([provider.default_region, *provider.regions]))
    db.flush()
    return provider


def delete_provider(*, db: Session, provider_id: int) -> None:
    """Remove a provider and every credential stored for it; tool runs keep its name."""
    provider = get_provider(db=db, provider_id=provider_id)
    db.execute(delete(AwsCredential).where(AwsCredential.provider_id == provider_id))
    db.delete(provider)
    db.flush()
