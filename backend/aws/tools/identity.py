"""Who am I: the identity the stored credentials act as."""

from __future__ import annotations

from botocore.exceptions import ClientError

from backend.aws.tools.base import Row, Scan, Tool


def whoami(scan: Scan) -> list[Row]:
    ident = scan.aws.client("sts", scan.region).get_caller_identity()
    try:
        aliases = scan.aws.client("iam", scan.region).list_account_aliases()["AccountAliases"]
    except ClientError:
        aliases = []  # listing aliases needs iam:ListAccountAliases; the identity does not
    return [
        {
            "account": ident["Account"],
            "arn": ident["Arn"],
            "user_id": ident["UserId"],
            "account_alias": ", ".join(aliases),
        }
    ]


WHOAMI = Tool(
    name="whoami",
    title="Who am I",
    description="The account, ARN and user id the stored credentials act as (STS).",
    columns=("account", "arn", "user_id", "account_alias"),
    scope="global",
    scan=whoami,
)
