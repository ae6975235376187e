"""Every tool against moto's server: catalog, results, pagination, downloads, run records."""

from __future__ import annotations

import csv
import io
import json
import time
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from backend.security.tokens import Role, create_token
from tests.aws.conftest import ACCOUNT, REGIONS, Emulator

AMI = "ami-12c6146b"


def run(
    client: TestClient, headers: dict[str, str], tool: str, provider: dict[str, Any], **body: Any
) -> dict[str, Any]:
    r = client.post(
        f"/api/aws/tools/{tool}/runs", json={"provider_id": provider["id"], **body}, headers=headers
    )
    assert r.status_code == 201, r.text
    return dict(r.json())


def test_the_catalog_lists_read_only_tools(
    app_client: TestClient, admin_headers: dict[str, str]
) -> None:
    data = app_client.get("/aws/tools", headers=admin_headers).json()
    names = {t["name"] for t in data["tools"]}
    assert {
        "whoami",
        "s3_public_access",
        "ec2_instances",
        "iam_old_access_keys",
        "cloudwatch_alarms",
        "open_security_groups",
    } <= names
    assert data["total"] >= 6
    assert all(t["read_only"] and t["columns"] for t in data["tools"])


def test_whoami(
    app_client: TestClient, admin_headers: dict[str, str], with_credentials: dict[str, Any]
) -> None:
    result = run(app_client, admin_headers, "whoami", with_credentials)
    assert result["outcome"] == "ok"
    [row] = result["rows"]
    assert row["account"] == ACCOUNT
    assert row["arn"].endswith("user/pcm-admin")


def test_s3_public_access(
    app_client: TestClient,
    admin_headers: dict[str, str],
    with_credentials: dict[str, Any],
    emulator: Emulator,
) -> None:
    s3 = emulator.client("s3")
    s3.create_bucket(Bucket="private-logs")
    s3.create_bucket(
        Bucket="public-site", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}
    )
    emulator.client("s3", "eu-west-1").put_bucket_acl(Bucket="public-site", ACL="public-read")
    s3.create_bucket(Bucket="locked")
    s3.put_public_access_block(
        Bucket="locked",
        PublicAccessBlockConfiguration={
            "BlockPublicAcls": True,
            "IgnorePublicAcls": True,
            "BlockPublicPolicy": True,
            "RestrictPublicBuckets": True,
        },
    )
    rows = {
        r["bucket"]: r
        for r in run(app_client, admin_headers, "s3_public_access", with_credentials)["rows"]
    }
    assert rows["public-site"]["public"] is True
    assert rows["public-site"]["region"] == "eu-west-1"
    assert rows["public-site"]["acl_public"] is True
    assert rows["locked"]["block_public_access"] is True
    assert rows["locked"]["public"] is False
    assert rows["private-logs"]["public"] is False


def test_ec2_instances_by_region_and_state(
    app_client: TestClient,
    admin_headers: dict[str, str],
    with_credentials: dict[str, Any],
    emulator: Emulator,
) -> None:
    east = emulator.client("ec2", "us-east-1")
    ids = [
        i["InstanceId"]
        for i in east.run_instances(ImageId=AMI, MinCount=2, MaxCount=2)["Instances"]
    ]
    east.stop_instances(InstanceIds=[ids[0]])
    emulator.client("ec2", "eu-west-1").run_instances(
        ImageId=AMI,
        MinCount=1,
        MaxCount=1,
        TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": "Name", "Value": "web"}]}],
    )
    everything = run(app_client, admin_headers, "ec2_instances", with_credentials)
    assert everything["outcome"] == "ok"
    assert everything["regions"] == REGIONS
    by_region = {r: [x for x in everything["rows"] if x["region"] == r] for r in REGIONS}
    assert [len(by_region[r]) for r in REGIONS] == [2, 1, 0]
    assert by_region["eu-west-1"][0]["name"] == "web"

    running = run(
        app_client,
        admin_headers,
        "ec2_instances",
        with_credentials,
        regions=["us-east-1"],
        params={"states": ["running"]},
    )
    assert [r["instance_id"] for r in running["rows"]] == [ids[1]]

    r = app_client.post(
        "/api/aws/tools/ec2_instances/runs",
        json={"provider_id": with_credentials["id"], "params": {"states": ["asleep"]}},
        headers=admin_headers,
    )
    assert r.status_code == 422
    assert "params.states.0" in str(r.json())


def test_iam_old_access_keys(
    app_client: TestClient,
    admin_headers: dict[str, str],
    with_credentials: dict[str, Any],
    emulator: Emulator,
) -> None:
    iam = emulator.client("iam")
    iam.create_user(UserName="ci-bot")
    bot_key = iam.create_access_key(UserName="ci-bot")["AccessKey"]["AccessKeyId"]
    rows = run(
        app_client,
        admin_headers,
        "iam_old_access_keys",
        with_credentials,
        params={"older_than_days": 0},
    )["rows"]
    assert {r["user"] for r in rows} == {"pcm-admin", "ci-bot"}
    assert bot_key in {r["access_key_id"] for r in rows}
    assert all(r["age_days"] == 0 and r["status"] == "Active" for r in rows)
    # Keys made today are not 90 days old.
    assert run(app_client, admin_headers, "iam_old_access_keys", with_credentials)["rows"] == []


def test_cloudwatch_alarms_in_alarm(
    app_client: TestClient,
    admin_headers: dict[str, str],
    with_credentials: dict[str, Any],
    emulator: Emulator,
) -> None:
    for region, name, state in (
        ("eu-west-1", "api-5xx", "ALARM"),
        ("eu-west-1", "disk", "OK"),
        ("ap-southeast-2", "queue-depth", "ALARM"),
    ):
        cw = emulator.client("cloudwatch", region)
        cw.put_metric_alarm(
            AlarmName=name,
            MetricName="Errors",
            Namespace="App",
            Statistic="Sum",
            Period=60,
            EvaluationPeriods=1,
            Threshold=1,
            ComparisonOperator="GreaterThanThreshold",
        )
        cw.set_alarm_state(AlarmName=name, StateValue=state, StateReason=f"test {state}")
    rows = run(app_client, admin_headers, "cloudwatch_alarms", with_credentials)["rows"]
    assert sorted((r["region"], r["alarm"]) for r in rows) == [
        ("ap-southeast-2", "queue-depth"),
        ("eu-west-1", "api-5xx"),
    ]
    assert rows[0]["reason"] == "test ALARM"


def test_open_security_groups(
    app_client: TestClient,
    admin_headers: dict[str, str],
    with_credentials: dict[str, Any],
    emulator: Emulator,
) -> None:
    ec2 = emulator.client("ec2", "eu-west-1")
    vpc = ec2.describe_vpcs()["Vpcs"][0]["VpcId"]

    def group(name: str, rules: list[dict[str, Any]]) -> str:
        gid = ec2.create_security_group(GroupName=name, Description=name, VpcId=vpc)["GroupId"]
        ec2.authorize_security_group_ingress(GroupId=gid, IpPermissions=rules)
        return str(gid)

    ssh = group(
        "ssh-world",
        [
            {
                "IpProtocol": "tcp",
                "FromPort": 22,
                "ToPort": 22,
                "IpRanges": [{"CidrIp": "0.0.0.0/0"}],
            }
        ],
    )
    group(
        "https-world",
        [
            {
                "IpProtocol": "tcp",
                "FromPort": 443,
                "ToPort": 443,
                "IpRanges": [{"CidrIp": "0.0.0.0/0"}],
            }
        ],
    )
    group(
        "db-internal",
        [
            {
                "IpProtocol": "tcp",
                "FromPort": 5432,
                "ToPort": 5432,
                "IpRanges": [{"CidrIp": "10.0.0.0/8"}],
            }
        ],
    )
    everything = group("all-v6", [{"IpProtocol": "-1", "Ipv6Ranges": [{"CidrIpv6": "::/0"}]}])
    rows = run(app_client, admin_headers, "open_security_groups", with_credentials)["rows"]
    found = {r["group_id"]: r for r in rows}
    assert set(found) == {ssh, everything}
    assert found[ssh]["sensitive_ports"] == "22"
    assert found[everything]["protocol"] == "all"
    assert "3389" in found[everything]["sensitive_ports"].split()
    custom = run(
        app_client,
        admin_headers,
        "open_security_groups",
        with_credentials,
        params={"ports": [443]},
    )["rows"]
    assert {r["group_name"] for r in custom} == {"https-world", "all-v6"}


def test_runs_are_recorded_and_downloadable(
    app_client: TestClient,
    admin_headers: dict[str, str],
    with_credentials: dict[str, Any],
    emulator: Emulator,
) -> None:
    s3 = emulator.client("s3")
    s3.create_bucket(Bucket="alpha")
    result = run(app_client, admin_headers, "s3_public_access", with_credentials)
    runs = app_client.get("/api/aws/runs", headers=admin_headers).json()
    [item] = runs["items"]
    assert item["id"] == result["id"]
    assert item["actor"] == "token:admin"
    assert item["provider"] == "prod"
    assert item["outcome"] == "ok"
    assert item["duration_ms"] > 0
    assert "rows" not in item

    r = app_client.get(f"/api/aws/runs/{item['id']}/download?format=csv", headers=admin_headers)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/csv")
    assert "attachment" in r.headers["content-disposition"]
    table = list(csv.DictReader(io.StringIO(r.text)))
    assert [row["bucket"] for row in table] == ["alpha"]

    r = app_client.get(f"/api/aws/runs/{item['id']}/download?format=json", headers=admin_headers)
    assert r.json()["rows"][0]["bucket"] == "alpha"
    assert app_client.get("/api/aws/runs/999/download", headers=admin_headers).status_code == 404
    bad = app_client.get(f"/api/aws/runs/{item['id']}/download?format=xls", headers=admin_headers)
    assert bad.status_code == 422

    # The record holds no secret.
    stored = json.dumps(app_client.get(f"/api/aws/runs/{item['id']}", headers=admin_headers).json())
    assert emulator.admin.secret_access_key not in stored


def test_permissions_and_errors(
    app_client: TestClient,
    admin_headers: dict[str, str],
    with_credentials: dict[str, Any],
    sessions: sessionmaker[Session],
) -> None:
    with sessions.begin() as s:
        _row, viewer = create_token(s, name="dash", role=Role.VIEWER)
    viewer_headers = {"Authorization": f"Bearer {viewer}"}
    body = {"provider_id": with_credentials["id"]}
    r = app_client.post("/api/aws/tools/whoami/runs", json=body, headers=viewer_headers)
    assert r.status_code == 403
    assert app_client.get("/aws/tools", headers=viewer_headers).status_code == 200
    r = app_client.post("/api/aws/tools/nope/runs", json=body, headers=admin_headers)
    assert r.status_code == 404
    r = app_client.post(
        "/api/aws/tools/whoami/runs", json={"provider_id": 99}, headers=admin_headers
    )
    assert r.status_code == 404
    r = app_client.post(
        "/api/aws/tools/whoami/runs",
        json={**body, "regions": ["moon-1"]},
        headers=admin_headers,
    )
    assert r.status_code == 422
    assert "regions.0" in str(r.json())


def test_a_failing_region_makes_a_partial_run(emulator: Emulator, settings: Any) -> None:
    from backend.aws.clients import AwsConnector
    from backend.aws.models import Provider
    from backend.aws.runs import execute
    from backend.aws.secrets import AwsSecret
    from backend.aws.tools import Tool
    from backend.aws.tools.base import NoParams

    def scan(s: Any) -> list[dict[str, Any]]:
        if s.region == "eu-west-1":
            s.aws.client("ec2", s.region).describe_instances(InstanceIds=["i-nope"])
        return [{"region": s.region}]

    tool = Tool("probe", "probe", "", ("region",), "regional", scan)
    secret = AwsSecret(emulator.admin.access_key_id, emulator.admin.secret_access_key)
    provider = Provider(id=1, name="p", default_region="us-east-1")
    settings = settings.model_copy(update={"aws_endpoint_url": emulator.url})
    run = execute(
        tool=tool,
        provider=provider,
        regions=REGIONS,
        params=NoParams(),
        aws=AwsConnector(settings, secret),
        workers=4,
        actor="test",
    )
    assert run.outcome == "partial"
    assert [e["region"] for e in run.errors] == ["eu-west-1"]
    assert "InvalidInstanceID" in run.errors[0]["error"]
    assert sorted(r["region"] for r in run.rows) == ["ap-southeast-2", "us-east-1"]


def test_scale_5000_objects_across_regions(
    app_client: TestClient,
    admin_headers: dict[str, str],
    with_credentials: dict[str, Any],
    emulator: Emulator,
) -> None:
    # Buckets are made through the API; 5,000 objects are put into the emulator's own store
    # (over HTTP they would take ~1 minute on moto); the tool still reads them over HTTP.
    from moto.s3.models import s3_backends

    per_bucket = {
        "scale-us": ("us-east-1", 2500),
        "scale-eu": ("eu-west-1", 1500),
        "scale-ap": ("ap-southeast-2", 1000),
    }
    for bucket, (region, _) in per_bucket.items():
        config = (
            {}
            if region == "us-east-1"
            else {"CreateBucketConfiguration": {"LocationConstraint": region}}
        )
        emulator.client("s3", region).create_bucket(Bucket=bucket, **config)
    backend = s3_backends[ACCOUNT]["aws"]
    for bucket, (_, count) in per_bucket.items():
        for i in range(count):
            backend.put_object(bucket, f"data/{i:05d}.json", b"x" * (i % 7 + 1))
    t0 = time.monotonic()
    result = run(app_client, admin_headers, "s3_bucket_usage", with_credentials)
    elapsed = time.monotonic() - t0
    rows = {r["bucket"]: r for r in result["rows"]}
    assert result["outcome"] == "ok"
    assert {b: rows[b]["objects"] for b in per_bucket} == {b: c for b, (_, c) in per_bucket.items()}
    assert sum(rows[b]["objects"] for b in per_bucket) == 5000
    assert rows["scale-eu"]["region"] == "eu-west-1"
    assert rows["scale-us"]["bytes"] == sum(i % 7 + 1 for i in range(2500))
    assert elapsed < 30, elapsed
