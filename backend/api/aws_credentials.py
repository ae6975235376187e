"""/api/aws/credentials: the caller's own AWS credentials, per provider (never echoed back)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Request, Response, status

from backend.api.aws_errors import AwsRoute
from backend.api.deps import DbDep, RowId, SettingsDep, Viewer, body_doc, json_body
from backend.api.responses import AUTHENTICATED, BODY, CONFLICT, NOT_FOUND
from backend.aws import credentials as service
from backend.aws.caller import AwsCaller, CallerSession, store_caller_credentials
from backend.aws.errors import CredentialsNotFound
from backend.aws.providers import get_provider
from backend.aws.schemas import CredentialsIn
from backend.aws.sweeper import FLAG, CredentialSweeper
from backend.flags import current
from backend.security.credentials_crypto import KeyRingSource
from backend.security.flag import enabled
from backend.security.sessions import SessionStore


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    app.state.aws_keys = service.key_ring_source(app.state.settings)
    sweeper = CredentialSweeper(
        app.state.sessions, app.state.aws_keys, enabled, lambda: current().version
    )
    sweeper.start()
    try:
        yield
    finally:
        sweeper.stop()


router = APIRouter(
    prefix="/api/aws/credentials",
    tags=["aws"],
    route_class=AwsRoute,
    lifespan=lifespan,
    responses=AUTHENTICATED,
)


def get_keys(request: Request) -> KeyRingSource:
    keys: KeyRingSource | None = getattr(request.app.state, "aws_keys", None)
    if keys is None:  # the app was served without its lifespan
        keys = request.app.state.aws_keys = service.key_ring_source(request.app.state.settings)
    return keys


def aws_caller(
    request: Request,
    who: Viewer,
    db: DbDep,
    settings: SettingsDep,
    keys: Annotated[KeyRingSource, Depends(get_keys)],
) -> AwsCaller:
    session_id = getattr(request.state, "session_id", None) or who.session_id
    store: SessionStore | None = getattr(request.app.state, "session_store", None)
    session = CallerSession(store, session_id) if store and session_id else None
    caller = AwsCaller(who.name, db, keys, session, enabled(FLAG), settings)
    if caller.secure and session is not None:
        # Credentials stored while the flag was off move into sealed rows on first use.
        with db.begin():
            moved = service.adopt_session_credentials(
                db=db, ring=keys.load(), owner=who.name, session=session
            )
        service.forget_session_credentials(session=session, keys=moved)
    return caller


CallerDep = Annotated[AwsCaller, Depends(aws_caller)]


@router.get("")
def list_credentials(caller: CallerDep) -> dict[str, Any]:
    with caller.db.begin():
        items = service.list_credentials(db=caller.db, owner=caller.owner, session=caller.session)
    return {
        "owner": caller.owner,
        "secure_storage": caller.secure,
        "total": len(items),
        "items": [i.as_dict() for i in items],
    }


@router.put(
    "/{provider_id}",
    responses={**NOT_FOUND, **CONFLICT, **BODY},
    openapi_extra=body_doc(CredentialsIn),
)
def store_credentials(
    caller: CallerDep,
    body: Annotated[CredentialsIn, Depends(json_body(CredentialsIn))],
    provider_id: RowId,
) -> dict[str, Any]:
    _, info = store_caller_credentials(caller=caller, provider_id=provider_id, body=body)
    return info.as_dict()


@router.delete("/{provider_id}", status_code=status.HTTP_204_NO_CONTENT, responses=NOT_FOUND)
def delete_credentials(caller: CallerDep, provider_id: RowId) -> Response:
    with caller.db.begin():
        provider = get_provider(db=caller.db, provider_id=provider_id)
        found = service.delete_credentials(
            db=caller.db, owner=caller.owner, provider_id=provider.id, session=caller.session
        )
    if not found:
        raise CredentialsNotFound(caller.owner, provider.name)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
