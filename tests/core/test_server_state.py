"""Where the server listens: recorded by `server start`, read by every client, stale when
its process is gone, and overridden by an explicit HOST/PORT."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from backend.core import server_state
from backend.core.config import Settings
from backend.core.server_state import ServerState


@pytest.fixture
def server_pid() -> Iterator[int]:
    """A live process whose command line names backend.main, standing in for the server."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", "backend.main"])
    # Popen returns once execve closed the error pipe, which is before the kernel publishes the
    # new command line: until then /proc/PID/cmdline reads empty. Wait for it, never for a time.
    cmdline = Path(f"/proc/{proc.pid}/cmdline")
    while cmdline.exists() and b"backend.main" not in cmdline.read_bytes():
        assert proc.poll() is None, "the stand-in server exited"
        os.sched_yield()
    yield proc.pid
    proc.kill()
    proc.wait()


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def record(settings: Settings, *, pid: int, host: str = "127.0.0.1", port: int = 8620) -> None:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    state = ServerState(pid, host, port, 2, "2026-12-01T10:00:00+00:00")
    server_state.write(settings.server_state_file, state)


def test_base_url__a_running_server_on_another_port__is_found(
    tmp_path: Path, server_pid: int
) -> None:
    # Given a server that recorded port 8620 and still runs
    settings = Settings(data_dir=tmp_path)
    record(settings, pid=server_pid)
    # When a client without PORT computes the URL, Then it is the server's
    assert settings.base_url == "http://127.0.0.1:8620"
    assert settings.listen_url == "http://127.0.0.1:8500"  # what a new server would take
    assert settings.server_state_file.stat().st_mode & 0o777 == 0o600


def test_base_url__explicit_port_or_host__wins(tmp_path: Path, server_pid: int) -> None:
    record(Settings(data_dir=tmp_path), pid=server_pid, host="127.0.0.2")
    assert Settings(data_dir=tmp_path, port=9000).base_url == "http://127.0.0.2:9000"
    assert Settings(data_dir=tmp_path, host="localhost").base_url == "http://localhost:8620"
    both = Settings(data_dir=tmp_path, host="localhost", port=9000)
    assert both.base_url == "http://localhost:9000"


def test_base_url__the_recorded_process_is_gone__the_file_is_ignored(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    record(settings, pid=dead_pid())
    assert settings.running_server is None
    assert settings.base_url == "http://127.0.0.1:8500"


def test_base_url__the_pid_now_runs_another_program__the_file_is_ignored(
    tmp_path: Path,
) -> None:
    # This test process is alive, but it is not the server (a pid reused after a reboot).
    settings = Settings(data_dir=tmp_path)
    record(settings, pid=os.getpid())
    assert settings.running_server is None


def test_base_url__an_unreadable_file__is_ignored(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    settings.server_state_file.write_text("{not json")
    assert settings.base_url == "http://127.0.0.1:8500"


def test_restart_command__brings_the_server_back_where_it_was(
    tmp_path: Path, server_pid: int
) -> None:
    settings = Settings(data_dir=tmp_path)
    assert settings.restart_command() == "./stop.sh && ./start.sh"
    record(settings, pid=server_pid, host="0.0.0.0")
    assert settings.restart_command() == (
        "./stop.sh && HOST=0.0.0.0 PORT=8620 WORKERS=2 ./start.sh"
    )
    assert settings.base_url == "http://127.0.0.1:8620"  # all interfaces: reached on loopback


def test_serves_this_app__a_kernel_thread_with_the_recorded_pid__is_not_the_server() -> None:
    # An empty command line is a process mid-exec (benefit of the doubt) or a kernel thread.
    kthreadd = Path("/proc/2/comm")
    if not kthreadd.exists() or kthreadd.read_text().strip() != "kthreadd":
        pytest.skip("SKIPPED LOUDLY: no kernel thread visible in this pid namespace")
    assert server_state.serves_this_app(2) is False
