"""Schemathesis against a live server, every check on: no server error, and every answer (status,
content type, headers, body) is one the OpenAPI document declares.

It runs as the admin token, with the flags free to change: toggles and the emergency rollback
are in, so later requests meet the flags at any value, their rollback values included. Left out
are only the two operations that could take the token's own rights away mid-run (revoking a
token, changing a user). AWS calls go to a closed local port: they fail fast, never leave the
machine. CI runs a bounded, seeded run; `-m slow` a longer one with a fresh seed.
"""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import Server

ST = Path(sys.executable).with_name("st")
CI_SEED = "20261201"
# Operations that could revoke or demote the token schemathesis itself uses.
EXCLUDED = ("revoke_api_tokens__token_id__delete", "change_user_api_users__username__patch")


def closed_port() -> int:
    """A local port nothing listens on (AWS calls sent there are refused at once)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def live(tmp_path: Path) -> Iterator[Server]:
    aws = {"PCM_AWS_ENDPOINT_URL": f"http://127.0.0.1:{closed_port()}"}
    with Server.running(tmp_path, aws) as server:
        yield server


def run_schemathesis(server: Server, cwd: Path, *options: str) -> subprocess.CompletedProcess[str]:
    command = [
        str(ST),
        "run",
        f"{server.url}/openapi.json",
        "--header",
        f"Authorization: Bearer {server.token()}",
        "--checks",
        "all",
        "--workers",
        "1",
        "--no-shrink",
        "--generation-database",
        "none",
        "--no-color",
        *(arg for op in EXCLUDED for arg in ("--exclude-operation-id", op)),
        *options,
    ]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=900)


def assert_clean(server: Server, result: subprocess.CompletedProcess[str]) -> None:
    report = result.stdout + result.stderr
    assert result.returncode == 0, report[-12000:]
    assert "Tested: " in report
    log = server.log_file.read_text(errors="replace")
    errors = [line for line in log.splitlines() if " ERROR " in line]
    assert not errors, "\n".join(errors[:20])


def test_schemathesis__all_checks_bounded_run__no_failure(live: Server, tmp_path: Path) -> None:
    result = run_schemathesis(live, tmp_path, "--max-examples", "25", "--seed", CI_SEED)
    assert_clean(live, result)


@pytest.mark.slow
def test_schemathesis__all_checks_long_run__no_failure(live: Server, tmp_path: Path) -> None:
    result = run_schemathesis(live, tmp_path, "--max-examples", "300")
    assert_clean(live, result)
