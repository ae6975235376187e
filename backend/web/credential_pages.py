"""/credentials: the signed-in caller's own AWS credentials per provider (masked), forms to
store, replace and delete them, and the "check credentials" call (STS GetCallerIdentity).
Secrets go one way: typed into a form, sealed by the AWS service, never shown again."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError

from backend.api.aws_credentials import CallerDep
from backend.api.aws_errors import status_of
from backend.api.deps import RowId, RowIdQuery
from backend.aws import credentials as service
from backend.aws.caller import AwsCaller, check_caller_credentials, store_caller_credentials
from backend.aws.errors import AwsError
from backend.aws.providers import get_provider, list_providers
from backend.aws.schemas import CredentialsIn
from backend.security.credentials_crypto import KeyRingError
from backend.web.access import PageViewer
from backend.web.forms import FieldErrors, field_errors
from backend.web.notices import NoticeCode, NoticeSubject, notice_text, redirect_with_notice
from backend.web.templating import page

router = APIRouter(include_in_schema=False)
ProviderId = RowId
Secret = Annotated[str, Form(max_length=4096)]
PATTERNS = {
    "access_key_id": "16 to 128 upper-case letters and digits, like AKIA…",
    "role_arn": "a role ARN, like arn:aws:iam::123456789012:role/name",
}


@dataclass
class CredentialForm:
    """One provider's form as submitted: only the non-secret fields are ever shown back."""

    provider_id: int
    access_key_id: str = ""
    role_arn: str = ""
    errors: FieldErrors = field(default_factory=dict)


class CredentialInput:
    def __init__(
        self,
        access_key_id: Annotated[str, Form(max_length=200)] = "",
        secret_access_key: Secret = "",
        session_token: Secret = "",
        role_arn: Annotated[str, Form(max_length=2048)] = "",
    ) -> None:
        self.access_key_id, self.role_arn = access_key_id, role_arn
        self.secret_access_key, self.session_token = secret_access_key, session_token

    def data(self) -> dict[str, Any]:
        return {
            "access_key_id": self.access_key_id,
            "secret_access_key": self.secret_access_key,
            "session_token": self.session_token or None,
            "role_arn": self.role_arn.strip() or None,
        }


def _credentials_page(
    request: Request,
    caller: AwsCaller,
    *,
    form: CredentialForm | None = None,
    check: dict[str, Any] | None = None,
    notice: tuple[str | None, str | None] = (None, None),
    error: str | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    with caller.db.begin():
        providers = list_providers(db=caller.db)
        stored = service.list_credentials(db=caller.db, owner=caller.owner, session=caller.session)
    text = notice_text(*notice, {p.name: {} for p in providers})
    return page(
        request,
        "credentials.html",
        status_code,
        owner=caller.owner,
        secure=caller.secure,
        providers=providers,
        stored={c.provider_id: c.as_dict() for c in stored},
        form=form,
        check=check,
        notice=text,
        error=error,
    )


@router.get("/credentials", response_class=HTMLResponse)
def credentials_page(
    request: Request,
    _: PageViewer,
    caller: CallerDep,
    check: RowIdQuery = None,
    notice: NoticeCode = None,
    subject: NoticeSubject = None,
) -> HTMLResponse:
    result = None
    if check is not None:
        try:
            result = check_caller_credentials(caller=caller, provider_id=check)
        except (AwsError, KeyRingError) as exc:
            result = {"valid": False, "provider_id": check, "error": str(exc)}
    return _credentials_page(request, caller, check=result, notice=(notice, subject))


@router.post("/credentials/{provider_id}", response_class=HTMLResponse)
def store_credentials(
    request: Request,
    provider_id: ProviderId,
    _: PageViewer,
    caller: CallerDep,
    submitted: Annotated[CredentialInput, Depends()],
) -> Response:
    form = CredentialForm(provider_id, submitted.access_key_id, submitted.role_arn)
    try:
        body = CredentialsIn.model_validate(submitted.data())
        provider, _stored = store_caller_credentials(
            caller=caller, provider_id=provider_id, body=body
        )
        name = provider.name
    except ValidationError as exc:
        form.errors = field_errors(exc.errors(), patterns=PATTERNS)
        return _credentials_page(request, caller, form=form, status_code=422)
    except (AwsError, KeyRingError) as exc:
        return _credentials_page(request, caller, error=str(exc), status_code=status_of(exc))
    return redirect_with_notice("/credentials", "credentials_stored", name)


@router.post("/credentials/{provider_id}/delete", response_class=HTMLResponse)
def delete_credentials(
    request: Request, provider_id: ProviderId, _: PageViewer, caller: CallerDep
) -> Response:
    try:
        with caller.db.begin():
            provider = get_provider(db=caller.db, provider_id=provider_id)
            found = service.delete_credentials(
                db=caller.db, owner=caller.owner, provider_id=provider.id, session=caller.session
            )
            name = provider.name
    except (AwsError, KeyRingError) as exc:
        return _credentials_page(request, caller, error=str(exc), status_code=status_of(exc))
    if not found:
        return _credentials_page(
            request, caller, error=f"no credentials stored for {name}", status_code=404
        )
    return redirect_with_notice("/credentials", "credentials_deleted", name)
