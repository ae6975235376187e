"""/api/auth: the caller's AWS credential status."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from backend.api.deps import Viewer

router = APIRouter(prefix="/api/auth", tags=["auth"])


@router.get("/aws-check-credentials")
def aws_check_credentials(who: Viewer) -> dict[str, Any]:
    # Credential storage arrives with the AWS issue; until then nobody has stored any.
    return {
        "valid": False,
        "configured": False,
        "account": None,
        "arn": None,
        "error": f"no AWS credentials are configured for {who.name}",
    }
