"""The caller as the AWS side sees it, and the use cases that act for it: run a tool with
its credentials, check its credentials. The API and the console pages both call these."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from backend.aws import credentials as credential_store
from backend.aws import runs
from backend.aws.clients import AwsConnector
from backend.aws.credentials import CredentialInfo
from backend.aws.errors import CredentialsNotFound, ProviderDisabled
from backend.aws.models import Provider
from backend.aws.providers import get_provider, list_providers
from backend.aws.schemas import CredentialsIn, RunRequest
from backend.aws.secrets import AwsSecret
from backend.aws.tools import get_tool
from backend.aws.verification import check_credentials
from backend.core.config import Settings
from backend.security.credentials_crypto import KeyRingSource
from backend.security.sessions import SessionStore


@dataclass(frozen=True)
class CallerSession:
    """The caller's server-side session, where legacy (flag off) credentials live."""

    store: SessionStore
    session_id: str

    def read(self) -> dict[str, Any]:
        return self.store.read(self.session_id)

    def update(self, mutate: Callable[[dict[str, Any]], None]) -> Any:
        return self.store.update(self.session_id, mutate)


@dataclass(frozen=True)
class AwsCaller:
    """Owner name, session (if any), keys, and whether secure_credential_storage is on."""

    owner: str
    db: Session
    keys: KeyRingSource
    session: CallerSession | None
    secure: bool
    settings: Settings


def provider_secret(caller: AwsCaller, provider_id: int) -> tuple[Provider, AwsSecret]:
    """The provider and the caller's usable credentials for it."""
    with caller.db.begin():
        provider = get_provider(db=caller.db, provider_id=provider_id)
        secret = credential_store.load_credentials(
            db=caller.db,
            keys=caller.keys,
            owner=caller.owner,
            provider=provider,
            session=caller.session,
        )
    return provider, secret


def store_caller_credentials(
    *, caller: AwsCaller, provider_id: int, body: CredentialsIn
) -> tuple[Provider, CredentialInfo]:
    """Store (or replace) the caller's credentials for a provider: sealed in the database with
    secure_credential_storage on, in the caller's session with it off."""
    secret = AwsSecret(
        access_key_id=body.access_key_id,
        secret_access_key=body.secret_access_key.get_secret_value(),
        session_token=body.session_token.get_secret_value() if body.session_token else None,
        role_arn=body.role_arn,
    )
    with caller.db.begin():
        provider = get_provider(db=caller.db, provider_id=provider_id)
        info = credential_store.store_credentials(
            db=caller.db,
            keys=caller.keys,
            owner=caller.owner,
            provider=provider,
            secret=secret,
            secure=caller.secure,
            session=caller.session,
        )
    return provider, info


def run_tool(*, caller: AwsCaller, tool_name: str, request: RunRequest, actor: str) -> Any:
    """Run a tool with the caller's credentials across the provider's regions; the run is
    recorded. Bad tool parameters raise pydantic's ValidationError (locations in `params`)."""
    tool = get_tool(tool_name)
    params = tool.params.model_validate(request.params)
    provider, secret = provider_secret(caller, request.provider_id)
    if not provider.enabled:
        raise ProviderDisabled(provider.name)
    regions = request.regions or list(provider.regions or [provider.default_region])
    run = runs.execute(
        tool=tool,
        provider=provider,
        regions=regions,
        params=params,
        aws=AwsConnector(caller.settings, secret),
        workers=caller.settings.aws_max_workers,
        actor=actor,
    )
    with caller.db.begin():
        caller.db.add(run)
    return run


def check_caller_credentials(*, caller: AwsCaller, provider_id: int | None) -> dict[str, Any]:
    """{valid, account, arn, error, configured, …} for the caller's credentials of a provider
    (by default: the first provider they stored credentials for, else the first provider)."""
    if provider_id is None:
        with caller.db.begin():
            stored = credential_store.list_credentials(
                db=caller.db, owner=caller.owner, session=caller.session
            )
            providers = list_providers(db=caller.db)
        if stored:
            provider_id = stored[0].provider_id
        elif providers:
            provider_id = providers[0].id
        else:
            return _not_configured("no provider is defined yet")
    try:
        provider, secret = provider_secret(caller, provider_id)
    except CredentialsNotFound as exc:
        return _not_configured(str(exc), provider_id)
    result = check_credentials(aws=AwsConnector(caller.settings, secret), provider=provider)
    return {
        **result,
        "configured": True,
        "provider_id": provider.id,
        "provider": provider.name,
        "access_key_id": f"****{secret.hint}",
    }


def _not_configured(error: str, provider_id: int | None = None) -> dict[str, Any]:
    return {
        "valid": False,
        "configured": False,
        "account": None,
        "arn": None,
        "error": error,
        "provider_id": provider_id,
    }
