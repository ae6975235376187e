"""A server started on another port than 8500 is found by every command without repeating
PORT: `pcm-ops check`, ./quick-rollback.sh, ./tests/critical_path_test.sh, `server status`,
a second ./start.sh and the restart hint (the address is recorded in data/ while it runs)."""

from __future__ import annotations

import dataclasses
import json
import re
import stat

from tests.e2e.conftest import Server


def without_port(server: Server) -> Server:
    """The same data directory, in a shell where PORT and HOST are not set."""
    env = {k: v for k, v in server.env.items() if k not in ("PORT", "HOST")}
    return dataclasses.replace(server, env=env)


def all_passed(output: str) -> bool:
    """`N/N critical paths passed` with N > 0 (a server not found gives 0/N)."""
    found = re.search(r"^(\d+)/(\d+) critical paths passed$", output, re.MULTILINE)
    return found is not None and found[1] == found[2] and int(found[1]) > 0


def test_commands_reach_a_server_on_another_port_without_PORT(server_dirs: Server) -> None:
    # Given a server started with PORT set (a free port, never 8500)
    assert server_dirs.port != 8500
    started = server_dirs.run("./pcm-ops", "server", "start")
    assert started.returncode == 0, started.stdout + started.stderr
    assert f"URL:         {server_dirs.url}" in started.stdout
    state_file = server_dirs.data_dir / "pcm_ops_tools.server.json"
    state = json.loads(state_file.read_text())
    assert (state["host"], state["port"], state["workers"]) == ("127.0.0.1", server_dirs.port, 1)
    assert stat.S_IMODE(state_file.stat().st_mode) == 0o600
    shell = without_port(server_dirs)

    # When `pcm-ops check` runs without PORT, Then it checks that server: every path passes
    check = shell.run("./pcm-ops", "check")
    assert check.returncode == 0, check.stdout + check.stderr
    assert all_passed(check.stdout)

    # ./quick-rollback.sh goes through the server's API and its health check
    quick = shell.run("./quick-rollback.sh", "csrf_tokens_enabled")
    assert quick.returncode == 0, quick.stdout + quick.stderr
    assert "via api" in quick.stdout
    assert "Application health check passed" in quick.stdout
    assert "Server not running" not in quick.stdout
    with server_dirs.client() as c:
        assert c.get("/api/feature-flags/csrf_tokens_enabled").json()["enabled"] is False

    # ./tests/critical_path_test.sh too
    critical = shell.run("./tests/critical_path_test.sh")
    assert critical.returncode == 0, critical.stdout + critical.stderr
    assert all_passed(critical.stdout)

    # `server status` and a second ./start.sh report the real address
    status = shell.run("./pcm-ops", "server", "status")
    assert status.returncode == 0 and f"at {server_dirs.url}" in status.stdout, status.stdout
    assert f"pid {state['pid']}" in status.stdout and "workers: 1" in status.stdout
    again = shell.start()
    assert again.returncode == 0 and "already running" in again.stdout
    assert server_dirs.url in again.stdout and ":8500" in again.stdout  # "not at ...:8500"

    # The restart hint brings it back on its port
    flip = shell.run("./pcm-ops", "flags", "disable", "pydantic_v2_schemas", "-r", "test")
    assert flip.returncode == 0, flip.stdout + flip.stderr
    assert f"./stop.sh && PORT={server_dirs.port} ./start.sh" in flip.stdout

    # A restore that stops and starts the server brings it back on its port
    backup = shell.run("./pcm-ops", "db", "backup", "--json")
    assert backup.returncode == 0, backup.stdout + backup.stderr
    name = json.loads(backup.stdout)["file"]
    restored = shell.run("./pcm-ops", "db", "restore", name, "--stop", "--json")
    assert restored.returncode == 0, restored.stdout + restored.stderr
    assert json.loads(restored.stdout)["server_restarted"] is True
    moved = json.loads(state_file.read_text())
    assert moved["port"] == server_dirs.port and moved["pid"] != state["pid"]
    with server_dirs.client() as c:
        assert c.get("/api/health").status_code == 200

    # Then ./stop.sh stops it and the address goes with it
    stopped = shell.stop()
    assert stopped.returncode == 0 and "stopped gracefully" in stopped.stdout
    assert not state_file.exists()
    gone = shell.run("./pcm-ops", "server", "status")
    assert gone.returncode == 3 and "not running" in gone.stdout
