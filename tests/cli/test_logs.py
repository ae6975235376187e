"""`pcm-ops logs`: the runbook's greps on a log file with known times."""

from __future__ import annotations

import json
import os
from datetime import datetime, timedelta

import pytest

from backend.cli.logs import error_lines, parse_since
from tests.cli.conftest import Cli


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S,") + f"{moment.microsecond // 1000:03d}"


@pytest.fixture
def logged(cli: Cli) -> Cli:
    now = datetime.now()
    old, recent = now - timedelta(hours=2), now - timedelta(minutes=1)
    lines = [
        f"{stamp(old)} ERROR [pid 1] pcm_ops_tools: old failure",
        f"{stamp(old)} INFO [pid 1] pcm_ops_tools.flags: Feature flag a changed: on -> off",
        *(f"{stamp(recent)} INFO [pid 2] pcm_ops_tools: request {n}" for n in range(30)),
        f"{stamp(recent)} WARNING [pid 2] pcm_ops_tools.flags: Feature flag b changed: on -> off",
        f"{stamp(recent)} ERROR [pid 2] pcm_ops_tools: request failed",
        "Traceback (most recent call last):",
        "ValueError: boom exception",
    ]
    cli.log_file.parent.mkdir(parents=True)
    cli.log_file.write_text("\n".join(lines) + "\n")
    return cli


def test_tail_flags_and_errors(logged: Cli) -> None:
    tail = json.loads(logged("logs", "--json").stdout)["lines"]
    assert len(tail) == 20 and tail[-1] == "ValueError: boom exception"
    flags = json.loads(logged("logs", "--flags", "--json").stdout)["lines"]
    assert [line.split(": ", 1)[1] for line in flags] == [
        "Feature flag a changed: on -> off",
        "Feature flag b changed: on -> off",
    ]
    errors = json.loads(logged("logs", "--errors", "--json").stdout)["lines"]
    assert len(errors) == 3 and "old failure" in errors[0]
    recent = json.loads(logged("logs", "--errors", "--since", "30m", "--json").stdout)["lines"]
    assert len(recent) == 2 and "request failed" in recent[0]
    assert "boom" in recent[1]  # a traceback line takes its entry's time
    human = logged("logs", "--flags", "-n", "1")
    assert human.exit_code == 0 and "Feature flag b" in human.output


def test_bad_input(cli: Cli) -> None:
    assert cli("logs", "--since", "yesterday-ish").exit_code == 2


def test_logger_names_are_not_errors(cli: Cli) -> None:
    now = stamp(datetime.now())
    cli.log_file.parent.mkdir(parents=True)
    cli.log_file.write_text(
        f"{now} INFO [pid 3] uvicorn.error: Application startup complete.\n"
        f"{now} INFO [pid 3] pcm_ops_tools: login failed for admin\n"
    )
    errors = json.loads(cli("logs", "--errors", "--json").stdout)["lines"]
    assert len(errors) == 1 and "login failed" in errors[0]


def test_parse_since() -> None:
    now = datetime(2025, 8, 24, 13, 5).astimezone()
    assert parse_since("10m", now) == now - timedelta(minutes=10)
    assert parse_since("2h", now) == now - timedelta(hours=2)
    assert parse_since("12:30", now) == now.replace(hour=12, minute=30)
    assert parse_since("2025-08-24T09:00", now).hour == 9
    with pytest.raises(ValueError):
        parse_since("soon", now)


def test_lines_before_a_rotation__read_from_the_rotated_copies(cli: Cli) -> None:
    # Given: a log rotated twice, the flag lines spread over the copies and the current file
    now = datetime.now()
    logs = cli.log_file.parent
    logs.mkdir(parents=True)

    def entry(level: str, message: str, minutes_ago: float) -> str:
        moment = stamp(now - timedelta(minutes=minutes_ago))
        return f"{moment} {level} [pid 4] pcm_ops_tools: {message}"

    flag = "Feature flag {} changed: on -> off"
    files = {
        "pcm_ops_tools.log.2": [entry("INFO", flag.format("a"), 180), entry("ERROR", "old", 180)],
        "pcm_ops_tools.log.1": [entry("INFO", flag.format("b"), 5), entry("ERROR", "recent", 5)],
        "pcm_ops_tools.log": [entry("INFO", flag.format("c"), 1)],
    }
    for age, (name, lines) in zip((180, 5, 1), files.items(), strict=True):
        path = logs / name
        path.write_text("\n".join(lines) + "\n")
        written = (now - timedelta(minutes=age)).timestamp()
        os.utime(path, (written, written))
    # When / Then: the tail goes back into the copies, oldest first
    flags = json.loads(cli("logs", "--flags", "-n", "2", "--json").stdout)["lines"]
    assert [line.rsplit(": ", 2)[1] for line in flags] == [
        "Feature flag b changed",
        "Feature flag c changed",
    ]
    every = json.loads(cli("logs", "--flags", "--json").stdout)["lines"]
    assert len(every) == 3 and "flag a" in every[0]
    # The errors since a moment come from the copies written since then only
    recent = json.loads(cli("logs", "--errors", "--since", "30m", "--json").stdout)["lines"]
    assert len(recent) == 1 and recent[0].endswith("recent")
    since = now.astimezone() - timedelta(hours=4)
    assert [line.rsplit(": ", 1)[1] for line in error_lines(cli.log_file, since)] == [
        "old",
        "recent",
    ]


def test_flag_names_and_reasons__are_not_errors__failed_verifications_and_exceptions_are(
    cli: Cli,
) -> None:
    # Given the lines an emergency rollback and its request leave, and two real problems
    now = stamp(datetime.now())
    flags = f"{now} WARNING [pid 3] pcm_ops_tools.flags: Feature flag"
    cli.log_file.parent.mkdir(parents=True)
    cli.log_file.write_text(
        f"{flags} enhanced_error_handling changed: enabled -> disabled by admin via emergency"
        " (version 3, emergency rollback record 1) reason: error rate > 50%, failed logins\n"
        f'{now} INFO [pid 3] uvicorn.access: 127.0.0.1:5 - "POST /api/feature-flags/'
        'enhanced_error_handling/rollback HTTP/1.1" 200\n'
        f"{flags} emergency rollback completed: 1 changed, record 1, verification failed, 2 ms\n"
        f"{now} WARNING [pid 3] pcm_ops_tools.db: OperationalError: disk I/O\n"
    )
    # When the error lines are asked for
    errors = json.loads(cli("logs", "--errors", "--json").stdout)["lines"]
    # Then only the failed verification and the exception are
    assert [line.split(": ", 1)[1] for line in errors] == [
        "Feature flag emergency rollback completed: 1 changed, record 1, verification failed, 2 ms",
        "OperationalError: disk I/O",
    ]
