"""`pcm-ops logs --follow` as a real process on a log file that another writer appends to."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import clean_env, free_port

PCM_OPS = str(Path(sys.executable).parent / "pcm-ops")
# How long a line may take to show: generous, so that a busy machine does not fail the test
# (a `pcm-ops` process alone takes ~3.5 s to start at a load of 8 on two cores).
WAIT = 30.0


class Follower:
    """A running `pcm-ops logs … --follow`; its stdout lines arrive on a queue."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))

    def read_until(self, wanted: str, timeout: float = WAIT) -> list[str]:
        """Every line printed up to and including the first one that contains `wanted`."""
        seen: list[str] = []
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                break
            seen.append(line)
            if wanted in line:
                return seen
        pytest.fail(f"{wanted!r} not printed within {timeout} s; printed {seen}")

    def drain(self, quiet_for: float = 0.6) -> list[str]:
        """Whatever else is printed until the follower has been quiet for `quiet_for` s."""
        rest: list[str] = []
        while True:
            try:
                rest.append(self.lines.get(timeout=quiet_for))
            except queue.Empty:
                return rest


@pytest.fixture
def log_file(tmp_path: Path) -> Path:
    path = tmp_path / "logs" / "pcm_ops_tools.log"
    path.parent.mkdir(parents=True)
    path.write_text(
        "2025-08-24 13:05:09,123 INFO [pid 1] pcm_ops_tools.flags: Feature flag old\n"
        "2025-08-24 13:05:10,000 ERROR [pid 1] pcm_ops_tools: old failure\n"
    )
    return path


@pytest.fixture
def follow(tmp_path: Path, log_file: Path) -> Iterator[Callable[..., Follower]]:
    env = clean_env(tmp_path, free_port())
    procs: list[subprocess.Popen[str]] = []

    def start(*args: str) -> Follower:
        proc = subprocess.Popen(
            [PCM_OPS, "logs", *args, "--follow", "-n", "1"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        procs.append(proc)
        return Follower(proc)

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)  # what Ctrl-C sends: the command stops cleanly
            try:
                proc.wait(timeout=WAIT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def append(path: Path, *lines: str) -> None:
    # One write per line, flushed, as a logging handler does.
    with path.open("a") as fh:
        for line in lines:
            fh.write(line + "\n")
            fh.flush()
            os.fsync(fh.fileno())


def entry(level: str, logger: str, message: str) -> str:
    return f"2025-08-24 13:06:00,000 {level} [pid 7] {logger}: {message}"


def test_follow_flags_prints_only_new_flag_lines(
    follow: Callable[..., Follower], log_file: Path
) -> None:
    follower = follow("--flags")
    assert follower.read_until("Feature flag old")  # the tail comes first, then it follows
    flag_on = entry("INFO", "pcm_ops_tools.flags", "Feature flag a changed: off -> on")
    flag_off = entry("WARNING", "pcm_ops_tools.flags", "Feature flag b changed: on -> off")
    append(
        log_file,
        entry("INFO", "pcm_ops_tools", "GET /api/health 200"),
        flag_on,
        entry("ERROR", "pcm_ops_tools", "request failed"),
        flag_off,
    )
    printed = follower.read_until("Feature flag b") + follower.drain()
    assert printed == [flag_on, flag_off]


def test_follow_errors_prints_only_new_error_lines(
    follow: Callable[..., Follower], log_file: Path
) -> None:
    follower = follow("--errors")
    assert follower.read_until("old failure")
    failed = entry("ERROR", "pcm_ops_tools", "request failed")
    boom = "ValueError: boom exception"
    append(
        log_file,
        entry("INFO", "pcm_ops_tools.flags", "Feature flag a changed: off -> on"),
        failed,
        entry("INFO", "uvicorn.error", "Application startup complete."),
        boom,
    )
    printed = follower.read_until("boom") + follower.drain()
    assert printed == [failed, boom]


def test_follow_waits_for_the_end_of_a_line(
    follow: Callable[..., Follower], log_file: Path
) -> None:
    """A line written in two pieces is matched and printed once, whole."""
    follower = follow("--flags")
    follower.read_until("Feature flag old")
    line = entry("INFO", "pcm_ops_tools.flags", "Feature flag c changed: on -> off")
    cut = line.index("Feature fl") + len("Feature fl")
    with log_file.open("a") as fh:
        fh.write(line[:cut])
        fh.flush()
        time.sleep(0.6)  # the follower polls every 0.2 s: it sees the first piece alone
        fh.write(line[cut:] + "\n")
    assert follower.read_until("Feature flag c") + follower.drain() == [line]


# Another process logging through the server's set-up, with a log rotated every 600 bytes.
WRITER = """
import logging, sys, time
from pathlib import Path
from backend.core.log import configure_logging
from backend.core.logfiles import Rotation
configure_logging(Path(sys.argv[1]), rotation=Rotation(max_bytes=600, backups=1000))
log = logging.getLogger("pcm_ops_tools.flags")
for n in range(int(sys.argv[2])):
    log.info("Feature flag rotated%d changed: on -> off", n)
    if n % 10 == 9:
        time.sleep(0.5)  # the follower looks between rotations, and misses some
"""


def test_follow_goes_on_in_the_new_file_after_a_rotation(
    follow: Callable[..., Follower], log_file: Path
) -> None:
    # Given: a follower of the flag lines
    follower = follow("--flags")
    follower.read_until("Feature flag old")
    # When: another process writes 40 flag lines, the log rotating every few of them
    count = 40
    writer = subprocess.run(
        [sys.executable, "-c", WRITER, str(log_file), str(count)],
        cwd=Path(__file__).resolve().parents[2],
        timeout=120,
    )
    assert writer.returncode == 0
    # Then: every line is printed once, in order, although it was written to several files
    printed = follower.read_until(f"Feature flag rotated{count - 1} ") + follower.drain()
    assert [line.split(": ", 1)[1] for line in printed] == [
        f"Feature flag rotated{n} changed: on -> off" for n in range(count)
    ]
    assert len(list(log_file.parent.glob("pcm_ops_tools.log.*"))) > 5
