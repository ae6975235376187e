"""IAM: access keys older than N days (rotation overdue)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from backend.aws.tools.base import Row, Scan, Tool, iso


class OldKeyParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    older_than_days: int = Field(default=90, ge=0, le=36500, description="minimum key age")


def _keys_of(scan: Scan, user: str) -> list[dict[str, Any]]:
    iam = scan.aws.client("iam", scan.region)
    keys: list[dict[str, Any]] = []
    for page in iam.get_paginator("list_access_keys").paginate(UserName=user):
        keys += page.get("AccessKeyMetadata", [])
    return keys


def _row(scan: Scan, key: dict[str, Any], now: datetime) -> Row:
    iam = scan.aws.client("iam", scan.region)
    used = iam.get_access_key_last_used(AccessKeyId=key["AccessKeyId"]).get("AccessKeyLastUsed", {})
    return {
        "user": key["UserName"],
        "access_key_id": key["AccessKeyId"],
        "status": key.get("Status"),
        "created": iso(key["CreateDate"]),
        "age_days": (now - key["CreateDate"]).days,
        "last_used": iso(used.get("LastUsedDate")),
        "last_used_service": used.get("ServiceName"),
    }


def iam_old_access_keys(scan: Scan) -> list[Row]:
    params: OldKeyParams = scan.params
    iam = scan.aws.client("iam", scan.region)
    users = [
        u["UserName"] for page in iam.get_paginator("list_users").paginate() for u in page["Users"]
    ]
    now = datetime.now(UTC)
    cutoff = now - timedelta(days=params.older_than_days)
    keys = [k for ks in scan.map(lambda u: _keys_of(scan, u), users) for k in ks]
    old = [k for k in keys if k["CreateDate"] <= cutoff]
    return sorted(scan.map(lambda k: _row(scan, k, now), old), key=lambda r: -r["age_days"])


IAM_OLD_KEYS = Tool(
    name="iam_old_access_keys",
    title="IAM access keys older than N days",
    description="Access keys past the rotation age, with when and where they were last used.",
    columns=(
        "user",
        "access_key_id",
        "status",
        "created",
        "age_days",
        "last_used",
        "last_used_service",
    ),
    scope="global",
    scan=iam_old_access_keys,
    params=OldKeyParams,
)
