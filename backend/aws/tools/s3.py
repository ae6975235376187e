"""S3: buckets with their public-access status, and bucket usage (objects, bytes)."""

from __future__ import annotations

from typing import Annotated, Any

from botocore.exceptions import ClientError
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from backend.aws.tools.base import Row, Scan, Tool, iso

PUBLIC_GROUPS = {
    "http://acs.amazonaws.com/groups/global/AllUsers",
    "http://acs.amazonaws.com/groups/global/AuthenticatedUsers",
}
BLOCK_SETTINGS = (
    "BlockPublicAcls",
    "IgnorePublicAcls",
    "BlockPublicPolicy",
    "RestrictPublicBuckets",
)


def _buckets(scan: Scan) -> list[dict[str, Any]]:
    s3 = scan.aws.client("s3", scan.region)
    buckets: list[dict[str, Any]] = []
    for page in s3.get_paginator("list_buckets").paginate():
        buckets += page.get("Buckets", [])
    return buckets


def _bucket_region(scan: Scan, name: str) -> str:
    loc = scan.aws.client("s3", scan.region).get_bucket_location(Bucket=name)
    return loc.get("LocationConstraint") or "us-east-1"


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _public_status(scan: Scan, bucket: dict[str, Any]) -> Row:
    name = bucket["Name"]
    region = bucket.get("BucketRegion") or _bucket_region(scan, name)
    s3 = scan.aws.client("s3", region)
    try:
        config = s3.get_public_access_block(Bucket=name)["PublicAccessBlockConfiguration"]
        blocked = all(config.get(k, False) for k in BLOCK_SETTINGS)
    except ClientError as exc:
        if _error_code(exc) != "NoSuchPublicAccessBlockConfiguration":
            raise
        blocked = False
    try:
        policy_public = bool(s3.get_bucket_policy_status(Bucket=name)["PolicyStatus"]["IsPublic"])
    except ClientError as exc:
        if _error_code(exc) not in ("NoSuchBucketPolicy", "NoSuchPolicy"):
            raise
        policy_public = False
    grants = s3.get_bucket_acl(Bucket=name).get("Grants", [])
    acl_public = any(g.get("Grantee", {}).get("URI") in PUBLIC_GROUPS for g in grants)
    return {
        "bucket": name,
        "region": region,
        "created": iso(bucket.get("CreationDate")),
        "block_public_access": blocked,
        "policy_public": policy_public,
        "acl_public": acl_public,
        # Block Public Access overrides public policies and ACLs.
        "public": not blocked and (policy_public or acl_public),
    }


def s3_public_access(scan: Scan) -> list[Row]:
    return scan.map(lambda b: _public_status(scan, b), _buckets(scan))


class UsageParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    bucket: (
        Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")] | None
    ) = Field(default=None, description="one bucket; every bucket when omitted")
    prefix: Annotated[str, StringConstraints(max_length=1024)] = ""


def _usage(scan: Scan, name: str) -> Row:
    params: UsageParams = scan.params
    region = _bucket_region(scan, name)
    s3 = scan.aws.client("s3", region)
    count = size = 0
    newest = None
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=name, Prefix=params.prefix):
        for obj in page.get("Contents", []):
            count += 1
            size += int(obj.get("Size", 0))
            if newest is None or obj["LastModified"] > newest:
                newest = obj["LastModified"]
    return {
        "bucket": name,
        "region": region,
        "objects": count,
        "bytes": size,
        "newest_object": iso(newest),
    }


def s3_bucket_usage(scan: Scan) -> list[Row]:
    params: UsageParams = scan.params
    names = [params.bucket] if params.bucket else [b["Name"] for b in _buckets(scan)]
    return scan.map(lambda n: _usage(scan, n), names)


S3_PUBLIC = Tool(
    name="s3_public_access",
    title="S3 buckets and public access",
    description="Every bucket with its Block Public Access, policy and ACL status.",
    columns=(
        "bucket",
        "region",
        "created",
        "block_public_access",
        "policy_public",
        "acl_public",
        "public",
    ),
    scope="global",
    scan=s3_public_access,
)

S3_USAGE = Tool(
    name="s3_bucket_usage",
    title="S3 bucket usage",
    description="Objects, bytes and newest object per bucket (walks every listing page).",
    columns=("bucket", "region", "objects", "bytes", "newest_object"),
    scope="global",
    scan=s3_bucket_usage,
    params=UsageParams,
)
