"""The catalog of read-only AWS tools."""

from backend.aws.errors import ToolNotFound
from backend.aws.tools.base import Row, Scan, Tool
from backend.aws.tools.cloudwatch import CLOUDWATCH_ALARMS
from backend.aws.tools.ec2 import EC2_INSTANCES, OPEN_SECURITY_GROUPS
from backend.aws.tools.iam import IAM_OLD_KEYS
from backend.aws.tools.identity import WHOAMI
from backend.aws.tools.s3 import S3_PUBLIC, S3_USAGE

CATALOG: dict[str, Tool] = {
    t.name: t
    for t in (
        WHOAMI,
        S3_PUBLIC,
        S3_USAGE,
        EC2_INSTANCES,
        IAM_OLD_KEYS,
        CLOUDWATCH_ALARMS,
        OPEN_SECURITY_GROUPS,
    )
}


def get_tool(name: str) -> Tool:
    """The tool called `name`, or ToolNotFound."""
    try:
        return CATALOG[name]
    except KeyError:
        raise ToolNotFound(name) from None


__all__ = ["CATALOG", "Row", "Scan", "Tool", "get_tool"]
