"""/providers: the AWS accounts the team works with; everyone reads, admins create, edit and
delete. Input is checked by the API's own schemas and saved by the same service functions."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError

from backend.api.aws_errors import status_of
from backend.api.deps import DbDep, RowId
from backend.aws import providers as service
from backend.aws.errors import AwsError, Conflict
from backend.aws.models import Provider
from backend.aws.regions import known_regions
from backend.aws.schemas import ProviderCreate, ProviderUpdate
from backend.web.access import PageAdmin, PageViewer
from backend.web.forms import FieldErrors, field_errors
from backend.web.notices import NoticeCode, NoticeSubject, notice_text, redirect_with_notice
from backend.web.templating import page

router = APIRouter(include_in_schema=False)
ProviderId = RowId
# Generous bounds: the schema gives the real limits, with a message beside the field.
Text = Annotated[str, Form(max_length=20_000)]
PATTERNS = {
    "name": "1 to 100 letters, digits, spaces, '_', '.' or '-', starting with a letter or digit",
    "account_id": "an AWS account id is exactly 12 digits",
}


class ProviderForm:
    """The provider form's fields as submitted (strings), and its errors."""

    def __init__(
        self,
        name: Annotated[str, Form(max_length=2000)] = "",
        account_id: Annotated[str, Form(max_length=2000)] = "",
        default_region: Annotated[str, Form(max_length=2000)] = "",
        regions: Annotated[list[str] | None, Form()] = None,
        description: Text = "",
        enabled: Annotated[str, Form(max_length=10)] = "",
    ) -> None:
        self.name, self.account_id, self.default_region = name, account_id, default_region
        self.regions = regions or []
        self.description = description
        self.enabled = enabled == "yes"
        self.errors: FieldErrors = {}

    @classmethod
    def of(cls, p: Provider) -> ProviderForm:
        form = cls(p.name, p.account_id, p.default_region, list(p.regions), p.description)
        form.enabled = p.enabled
        return form

    def data(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "account_id": self.account_id,
            "default_region": self.default_region,
            "regions": self.regions,
            "description": self.description,
            "enabled": self.enabled,
        }


def _form_page(
    request: Request, form: ProviderForm, provider_id: int | None, status_code: int = 200
) -> HTMLResponse:
    return page(
        request,
        "provider_form.html",
        status_code,
        form=form,
        provider_id=provider_id,
        all_regions=sorted(known_regions()),
    )


def _failed(
    request: Request, form: ProviderForm, provider_id: int | None, exc: Exception
) -> Response:
    if isinstance(exc, ValidationError):
        form.errors = field_errors(exc.errors(), patterns=PATTERNS)
        return _form_page(request, form, provider_id, 422)
    # A taken name says "name: …": show it beside the name field.
    field, _, message = str(exc).partition(": ")
    form.errors = {field: message} if isinstance(exc, Conflict) and message else {"form": str(exc)}
    return _form_page(request, form, provider_id, status_of(exc))


@router.get("/providers", response_class=HTMLResponse)
def providers_page(
    request: Request,
    _: PageViewer,
    db: DbDep,
    notice: NoticeCode = None,
    subject: NoticeSubject = None,
) -> HTMLResponse:
    providers = service.list_providers(db=db)
    text = notice_text(notice, subject, {p.name: {} for p in providers})
    return page(request, "providers.html", providers=providers, notice=text)


@router.get("/providers/new", response_class=HTMLResponse)
def new_provider(request: Request, _: PageAdmin) -> HTMLResponse:
    form = ProviderForm()
    form.enabled = True
    return _form_page(request, form, None)


@router.post("/providers", response_class=HTMLResponse)
def create_provider(
    request: Request, _: PageAdmin, db: DbDep, form: Annotated[ProviderForm, Depends()]
) -> Response:
    try:
        data = ProviderCreate.model_validate(form.data())
        with db.begin():
            provider = service.create_provider(db=db, data=data)
            name = provider.name
    except (ValidationError, AwsError) as exc:
        return _failed(request, form, None, exc)
    return redirect_with_notice("/providers", "provider_added", name)


@router.get("/providers/{provider_id}/edit", response_class=HTMLResponse)
def edit_provider(request: Request, provider_id: ProviderId, _: PageAdmin, db: DbDep) -> Response:
    try:
        provider = service.get_provider(db=db, provider_id=provider_id)
    except AwsError as exc:
        return page(request, "providers.html", 404, providers=[], error=str(exc))
    return _form_page(request, ProviderForm.of(provider), provider_id)


@router.post("/providers/{provider_id}", response_class=HTMLResponse)
def update_provider(
    request: Request,
    provider_id: ProviderId,
    _: PageAdmin,
    db: DbDep,
    form: Annotated[ProviderForm, Depends()],
) -> Response:
    try:
        data = ProviderUpdate.model_validate(form.data())
        with db.begin():
            provider = service.update_provider(db=db, provider_id=provider_id, data=data)
            name = provider.name
    except (ValidationError, AwsError) as exc:
        return _failed(request, form, provider_id, exc)
    return redirect_with_notice("/providers", "provider_saved", name)


@router.post("/providers/{provider_id}/delete", response_class=HTMLResponse)
def delete_provider(request: Request, provider_id: ProviderId, _: PageAdmin, db: DbDep) -> Response:
    try:
        with db.begin():
            service.delete_provider(db=db, provider_id=provider_id)
    except AwsError as exc:
        providers = service.list_providers(db=db)
        return page(request, "providers.html", status_of(exc), providers=providers, error=str(exc))
    return redirect_with_notice("/providers", "provider_deleted")
