"""`pcm-ops verify`: the runbook's success criteria against a real server, and with it down."""

from __future__ import annotations

import json
from datetime import datetime

from backend.cli.verify import ROUNDS, SLACK_MS, acceptable
from tests.cli.conftest import Cli, Server

HEALTH = "Application starts and responds to health checks"
NAVIGATION = "Critical user flows work: navigation (admin token)"
LOGIN = "Critical user flows work: authentication (login)"
LOGS = "No new errors in logs"
PERFORMANCE = "Performance returns to acceptable levels"
DATABASE = "Database integrity is maintained"


def stamp() -> str:
    """Now, as backend.core.log writes it (with milliseconds)."""
    now = datetime.now()
    return f"{now:%Y-%m-%d %H:%M:%S},{now.microsecond // 1000:03d}"


def statuses(stdout: str) -> dict[str, tuple[str, str]]:
    data = json.loads(stdout)
    return {c["criterion"]: (c["status"], c["detail"]) for c in data["checks"]}


def test_verify_with_the_server_down(initialized_cli: Cli) -> None:
    result = initialized_cli("verify", "--json")
    assert result.exit_code == 1
    checks = statuses(result.stdout)
    assert checks[HEALTH][0] == "fail" and "no server answers" in checks[HEALTH][1]
    assert checks[PERFORMANCE][0] == "skip"
    assert checks[DATABASE][0] == "pass"  # read from the file, server or not
    assert checks["All stakeholders are informed"][0] == "manual"
    human = initialized_cli("verify")
    assert "NOT VERIFIED" in human.output and "❌" in human.output


def test_acceptable__the_decision_matrix_with_a_floor() -> None:
    # Given a baseline, When the median now is measured, Then +50% (the runbook's line) fails
    # only past the floor: a few ms on a local health call is noise, not a regression.
    assert acceptable(100.0, 150.0, slack_ms=10)
    assert not acceptable(100.0, 151.0, slack_ms=10)
    assert acceptable(2.45, 12.45, slack_ms=10)  # +408%, but 10 ms: noise
    assert not acceptable(2.45, 12.5, slack_ms=10)
    assert not acceptable(0.001, 0.01, slack_ms=0)
    assert SLACK_MS >= 10


def test_verify__a_slowdown_must_persist__every_round_is_timed(server: Server) -> None:
    # Given a baseline the server cannot meet (a real regression looks like this)
    pcm = str(server.root / ".venv" / "bin" / "pcm-ops")
    server.data_dir.joinpath("baseline.json").write_text('{"median_ms": 0.001}')
    # When verify runs
    bad = server.run(pcm, "verify", "--slack-ms", "0", "--samples", "3", "--json")
    # Then it fails after timing every round, not on the first slow one
    status, detail = statuses(bad.stdout)[PERFORMANCE]
    assert bad.returncode == 1 and status == "fail"
    assert f"best of {ROUNDS} rounds" in detail
    # And a baseline the server meets passes in the first round.
    server.data_dir.joinpath("baseline.json").write_text('{"median_ms": 60000}')
    good = server.run(pcm, "verify", "--samples", "3", "--json")
    status, detail = statuses(good.stdout)[PERFORMANCE]
    assert status == "pass" and "rounds" not in detail, detail


def test_verify__right_after_an_emergency_rollback__passes_and_still_finds_real_errors(
    server: Server,
) -> None:
    # Given a running server whose flags are on (enhanced_error_handling among them)
    pcm = str(server.root / ".venv" / "bin" / "pcm-ops")
    with server.client() as c:
        flags = {f["name"]: f["enabled"] for f in c.get("/api/feature-flags").json()["flags"]}
    assert flags["enhanced_error_handling"] is True
    # When an emergency rollback succeeds, with the reason an operator would give
    done = server.run(pcm, "rollback", "emergency", "--reason", "error rate > 50%, failed logins")
    assert done.returncode == 0, done.stdout + done.stderr
    # Then the log holds its lines, and verify passes right after it
    log = server.log_file.read_text()
    assert "Feature flag enhanced_error_handling changed: enabled -> disabled" in log
    ok = server.run(pcm, "verify", "--json")
    checks = statuses(ok.stdout)
    assert ok.returncode == 0, checks
    assert checks[LOGS][0] == "pass", checks[LOGS]
    errors = server.run(pcm, "logs", "--errors", "--json")
    assert json.loads(errors.stdout)["lines"] == []
    # ... and a real error after it is still found, by both
    with server.log_file.open("a") as fh:
        fh.write(f"{stamp()} ERROR [pid 1] pcm_ops_tools: database exception after deploy\n")
    bad = server.run(pcm, "verify", "--json")
    assert bad.returncode == 1
    checks = statuses(bad.stdout)
    assert checks[LOGS][0] == "fail" and "database exception" in checks[LOGS][1]
    found = json.loads(server.run(pcm, "logs", "--errors", "--json").stdout)["lines"]
    assert len(found) == 1 and "database exception after deploy" in found[0]
