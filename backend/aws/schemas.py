"""Validated input of the AWS side; every error names its field (FastAPI answers 422)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    StringConstraints,
    WithJsonSchema,
    model_validator,
)

from backend.aws.regions import check_region, known_regions
from backend.db.base import MAX_ROW_ID

# The schema lists the regions botocore knows, so the OpenAPI document says what is accepted.
Region = Annotated[
    str,
    StringConstraints(strip_whitespace=True),
    AfterValidator(check_region),
    WithJsonSchema({"type": "string", "enum": sorted(known_regions())}),
]
ProviderName = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][\w .-]*$"
    ),
]
AccountId = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^[0-9]{12}$")]
Description = Annotated[str, StringConstraints(strip_whitespace=True, max_length=2000)]


def _unique(regions: list[str]) -> list[str]:
    return list(dict.fromkeys(regions))


Regions = Annotated[list[Region], Field(max_length=40), AfterValidator(_unique)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ProviderCreate(_Strict):
    name: ProviderName
    account_id: AccountId = Field(description="the 12-digit AWS account id")
    default_region: Region
    regions: Regions = Field(default_factory=list, description="regions the tools scan")
    description: Description = ""
    enabled: bool = True

    @model_validator(mode="after")
    def _default_region_is_scanned(self) -> ProviderCreate:
        self.regions = _unique([self.default_region, *self.regions])
        return self


class ProviderUpdate(_Strict):
    name: ProviderName | None = None
    account_id: AccountId | None = None
    default_region: Region | None = None
    regions: Regions | None = None
    description: Description | None = None
    enabled: bool | None = None

    def changes(self) -> dict[str, Any]:
        return self.model_dump(exclude_unset=True, exclude_none=True)


class CredentialsIn(_Strict):
    """An AWS key pair, with an optional session token and role to assume."""

    access_key_id: Annotated[
        str, StringConstraints(strip_whitespace=True, pattern=r"^[A-Z0-9]{16,128}$")
    ] = Field(description="e.g. AKIA... (16 to 128 upper-case letters and digits)")
    secret_access_key: Annotated[SecretStr, Field(min_length=16, max_length=128)]
    session_token: Annotated[SecretStr, Field(min_length=16, max_length=4096)] | None = None
    role_arn: (
        Annotated[
            str,
            StringConstraints(
                strip_whitespace=True,
                max_length=2048,
                pattern=r"^arn:aws[a-z-]*:iam::[0-9]{12}:role/[A-Za-z0-9_+=,.@/-]+$",
            ),
        ]
        | None
    ) = None


def _whole_number(value: Any) -> Any:
    """JSON's 7.0 is the integer 7 (JSON Schema agrees); strict parsing would refuse it."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


class RunRequest(_Strict):
    provider_id: Annotated[int, Field(ge=1, le=MAX_ROW_ID), BeforeValidator(_whole_number)]
    regions: Regions | None = Field(
        default=None, description="regions to scan; the provider's regions when omitted"
    )
    params: dict[str, Any] = Field(default_factory=dict, description="the tool's parameters")
