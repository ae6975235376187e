"""Whether stored credentials work: STS GetCallerIdentity through the configured endpoint."""

from __future__ import annotations

from typing import Any

from backend.aws.clients import AwsConnector
from backend.aws.models import Provider


def check_credentials(*, aws: AwsConnector, provider: Provider) -> dict[str, Any]:
    """{valid, account, arn, error}; bounded by the connector's timeouts and retries."""
    try:
        ident = aws.client("sts", provider.default_region).get_caller_identity()
    except Exception as exc:  # any failure is an answer here, not a 500
        return {"valid": False, "account": None, "arn": None, "error": aws.describe_error(exc)}
    account = ident.get("Account")
    return {
        "valid": True,
        "account": account,
        "arn": ident.get("Arn"),
        "error": None,
        "account_matches_provider": account == provider.account_id,
    }
