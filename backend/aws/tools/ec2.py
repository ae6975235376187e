"""EC2: instances by region and state, and security groups open to the world."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from backend.aws.tools.base import Row, Scan, Tool, iso, tag

State = Literal["pending", "running", "shutting-down", "terminated", "stopping", "stopped"]


class InstanceParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    states: list[State] = Field(default_factory=list, description="every state when empty")


def ec2_instances(scan: Scan) -> list[Row]:
    params: InstanceParams = scan.params
    ec2 = scan.aws.client("ec2", scan.region)
    filters = [{"Name": "instance-state-name", "Values": list(params.states)}]
    rows: list[Row] = []
    pages = ec2.get_paginator("describe_instances").paginate(
        Filters=filters if params.states else [], PaginationConfig={"PageSize": 1000}
    )
    for page in pages:
        for reservation in page.get("Reservations", []):
            for i in reservation.get("Instances", []):
                rows.append(
                    {
                        "region": scan.region,
                        "instance_id": i["InstanceId"],
                        "name": tag(i.get("Tags"), "Name"),
                        "type": i.get("InstanceType"),
                        "state": i.get("State", {}).get("Name"),
                        "availability_zone": i.get("Placement", {}).get("AvailabilityZone"),
                        "private_ip": i.get("PrivateIpAddress"),
                        "public_ip": i.get("PublicIpAddress"),
                        "launch_time": iso(i.get("LaunchTime")),
                    }
                )
    return rows


# Ports whose exposure to the internet is a finding: SSH, RDP, databases, caches, search, admin.
SENSITIVE_PORTS = (
    22,
    23,
    445,
    1433,
    1521,
    2375,
    3306,
    3389,
    5432,
    5601,
    5900,
    6379,
    9200,
    11211,
    27017,
)
WORLD = ("0.0.0.0/0", "::/0")
Port = Annotated[int, Field(ge=0, le=65535)]


class OpenGroupParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ports: list[Port] = Field(
        default_factory=lambda: list(SENSITIVE_PORTS), max_length=200, description="ports to check"
    )


def _exposed(rule: dict[str, Any], ports: list[int]) -> list[int]:
    protocol = str(rule.get("IpProtocol"))
    if protocol == "-1":
        return sorted(ports)  # every protocol, every port
    if protocol not in ("tcp", "udp", "6", "17"):
        return []
    low, high = int(rule.get("FromPort", 0)), int(rule.get("ToPort", 65535))
    return sorted(p for p in ports if low <= p <= high)


def open_security_groups(scan: Scan) -> list[Row]:
    params: OpenGroupParams = scan.params
    ec2 = scan.aws.client("ec2", scan.region)
    rows: list[Row] = []
    for page in ec2.get_paginator("describe_security_groups").paginate(
        PaginationConfig={"PageSize": 1000}
    ):
        for group in page.get("SecurityGroups", []):
            for rule in group.get("IpPermissions", []):
                sources = [r.get("CidrIp") for r in rule.get("IpRanges", [])]
                sources += [r.get("CidrIpv6") for r in rule.get("Ipv6Ranges", [])]
                exposed = _exposed(rule, params.ports)
                for source in sources:
                    if source in WORLD and exposed:
                        protocol = rule.get("IpProtocol")
                        rows.append(
                            {
                                "region": scan.region,
                                "group_id": group["GroupId"],
                                "group_name": group.get("GroupName"),
                                "vpc_id": group.get("VpcId"),
                                "protocol": "all" if protocol == "-1" else protocol,
                                "port_range": (
                                    "all"
                                    if protocol == "-1"
                                    else f"{rule.get('FromPort')}-{rule.get('ToPort')}"
                                ),
                                "source": source,
                                "sensitive_ports": " ".join(str(p) for p in exposed),
                            }
                        )
    return rows


EC2_INSTANCES = Tool(
    name="ec2_instances",
    title="EC2 instances",
    description="Instances by region and state, with type, addresses and launch time.",
    columns=(
        "region",
        "instance_id",
        "name",
        "type",
        "state",
        "availability_zone",
        "private_ip",
        "public_ip",
        "launch_time",
    ),
    scope="regional",
    scan=ec2_instances,
    params=InstanceParams,
)

OPEN_SECURITY_GROUPS = Tool(
    name="open_security_groups",
    title="Security groups open to the world",
    description="Ingress from 0.0.0.0/0 or ::/0 that reaches a sensitive port (SSH, RDP, DBs…).",
    columns=(
        "region",
        "group_id",
        "group_name",
        "vpc_id",
        "protocol",
        "port_range",
        "source",
        "sensitive_ports",
    ),
    scope="regional",
    scan=open_security_groups,
    params=OpenGroupParams,
)
