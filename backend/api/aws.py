"""/aws/tools and /api/auth/aws-check-credentials: the AWS side of the console."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from backend.api.deps import Viewer

router = APIRouter(tags=["aws"])


@router.get("/aws/tools")
def tools(_: Viewer) -> dict[str, Any]:
    # The catalog is filled by the AWS issue; an honest empty list until then.
    return {"tools": [], "total": 0}


@router.get("/api/auth/aws-check-credentials")
def aws_check_credentials(who: Viewer) -> dict[str, Any]:
    # Credential storage arrives with the AWS issue; until then nobody has stored any.
    return {
        "valid": False,
        "configured": False,
        "account": None,
        "arn": None,
        "error": f"no AWS credentials are configured for {who.name}",
    }
