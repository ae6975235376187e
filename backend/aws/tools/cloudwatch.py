"""CloudWatch: alarms currently in ALARM."""

from __future__ import annotations

from backend.aws.tools.base import Row, Scan, Tool, iso


def alarms_in_alarm(scan: Scan) -> list[Row]:
    cw = scan.aws.client("cloudwatch", scan.region)
    rows: list[Row] = []
    pages = cw.get_paginator("describe_alarms").paginate(
        StateValue="ALARM", AlarmTypes=["MetricAlarm", "CompositeAlarm"]
    )
    for page in pages:
        for kind, alarms in (
            ("metric", page.get("MetricAlarms", [])),
            ("composite", page.get("CompositeAlarms", [])),
        ):
            for a in alarms:
                rows.append(
                    {
                        "region": scan.region,
                        "alarm": a["AlarmName"],
                        "type": kind,
                        "namespace": a.get("Namespace", ""),
                        "metric": a.get("MetricName", ""),
                        "reason": a.get("StateReason", ""),
                        "since": iso(a.get("StateUpdatedTimestamp")),
                    }
                )
    return rows


CLOUDWATCH_ALARMS = Tool(
    name="cloudwatch_alarms",
    title="CloudWatch alarms in ALARM",
    description="Metric and composite alarms whose state is ALARM, with the reason.",
    columns=("region", "alarm", "type", "namespace", "metric", "reason", "since"),
    scope="regional",
    scan=alarms_in_alarm,
)
