"""The log file rotates by size or time, from several processes at once, without losing or
repeating a line; the copies are owner-only and read back oldest first."""

from __future__ import annotations

import logging
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from backend.core.config import from_environ
from backend.core.log import configure_logging
from backend.core.logfiles import Rotation, rotated_copies
from backend.flags import ConfigurationError

ROOT = Path(__file__).resolve().parents[2]
# A writer process: the server's and the CLI's logging set-up, a permissive umask (the copies
# must be 0600 anyway), then LINES lines as fast as it can.
WRITER = """
import logging, os, sys
from pathlib import Path
from backend.core.log import configure_logging
from backend.core.logfiles import Rotation
os.umask(0o022)
configure_logging(Path(sys.argv[1]), rotation=Rotation(max_bytes=int(sys.argv[2]), backups=10000))
log = logging.getLogger("pcm_ops_tools.writer")
for n in range(int(sys.argv[4])):
    log.info("Feature flag writer %s line %d", sys.argv[3], n)
"""
LINES = 1500


def every_line(log_file: Path) -> list[str]:
    return [
        line
        for path in [*rotated_copies(log_file), log_file]
        for line in path.read_text().splitlines()
    ]


def test_two_processes_tiny_max_size__every_line_once_in_0600_files(tmp_path: Path) -> None:
    # Given: two processes writing the same log, rotated every 2 KB
    log_file = tmp_path / "logs" / "pcm_ops_tools.log"
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(log_file), "2000", name, str(LINES)], cwd=ROOT
        )
        for name in ("a", "b")
    ]
    # When they are done
    assert [w.wait(timeout=300) for w in writers] == [0, 0]
    # Then: each line is there exactly once, in the current file or a copy
    lines = every_line(log_file)
    for name in ("a", "b"):
        mine = [line.rsplit(": ", 1)[1] for line in lines if f"writer {name} " in line]
        assert sorted(mine) == sorted(f"Feature flag writer {name} line {n}" for n in range(LINES))
    copies = rotated_copies(log_file)
    assert len(copies) > 50, "the log hardly rotated"
    # The lines of one writer follow each other in order, from the oldest copy to the current
    numbers = [int(line.rsplit(" ", 1)[1]) for line in lines if "writer a " in line]
    assert numbers == list(range(LINES))
    # And every file, the lock file included, is owner-only although the umask was 022
    for path in log_file.parent.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    # The runbook's grep still reads the current file
    grep = subprocess.run(["grep", "-c", "Feature flag", str(log_file)], capture_output=True)
    assert grep.returncode == 0 and int(grep.stdout) > 0


def test_by_time__the_copy_holds_the_earlier_lines(tmp_path: Path) -> None:
    # Given: a rotation every second, by time only
    log_file = tmp_path / "pcm_ops_tools.log"
    configure_logging(log_file, rotation=Rotation(max_bytes=0, backups=5, when="S"))
    log = logging.getLogger("pcm_ops_tools.test")
    # When: one line, then another once the second has passed
    log.warning("before")
    time.sleep(1.5)
    log.warning("after")
    # Then
    copies = rotated_copies(log_file)
    assert len(copies) == 1 and copies[0].name.startswith("pcm_ops_tools.log.20")
    assert copies[0].read_text().endswith("before\n")
    assert log_file.read_text().endswith("after\n")
    assert stat.S_IMODE(copies[0].stat().st_mode) == 0o600


def test_rotated_copies__oldest_first_without_temporary_files(tmp_path: Path) -> None:
    log_file = tmp_path / "pcm_ops_tools.log"
    log_file.write_text("current\n")
    same = time.time()
    for name in ("pcm_ops_tools.log.1", "pcm_ops_tools.log.3", "pcm_ops_tools.log.2"):
        (tmp_path / name).write_text(name)
        os.utime(tmp_path / name, (same, same))  # rotated in the same instant
    (tmp_path / "pcm_ops_tools.log.rotate.123456").write_text("being renamed")
    (tmp_path / ".__pcm_ops_tools.lock").write_text("")
    (tmp_path / "server.console.log").write_text("")
    assert [p.name for p in rotated_copies(log_file)] == [
        "pcm_ops_tools.log.3",
        "pcm_ops_tools.log.2",
        "pcm_ops_tools.log.1",
    ]


def test_rotation_settings__defaults_and_clear_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Rotation.of(from_environ()) == Rotation(10 * 1024 * 1024, 5, "")
    monkeypatch.setenv("PCM_LOG_MAX_BYTES", "65536")
    monkeypatch.setenv("PCM_LOG_BACKUPS", "9")
    monkeypatch.setenv("PCM_LOG_ROTATE_WHEN", "midnight")
    assert Rotation.of(from_environ()) == Rotation(65536, 9, "midnight")
    for name, bad in [
        ("PCM_LOG_ROTATE_WHEN", "weekly"),
        ("PCM_LOG_BACKUPS", "0"),  # no copy would mean truncating, losing the lines
        ("PCM_LOG_MAX_BYTES", "-1"),
    ]:
        with monkeypatch.context() as env:
            env.setenv(name, bad)
            with pytest.raises(ConfigurationError, match=name[4:].lower()):
                from_environ()


def test_by_time__a_period_that_ended_while_nothing_ran__rotated_and_a_file_is_there(
    tmp_path: Path,
) -> None:
    # Given: a log whose hourly period ended before the next start (the lock file keeps when)
    log_file = tmp_path / "pcm_ops_tools.log"
    hourly = Rotation(max_bytes=0, backups=5, when="H")
    configure_logging(log_file, rotation=hourly)
    logging.getLogger("pcm_ops_tools.test").warning("yesterday")
    logging.getLogger("pcm_ops_tools").handlers[0].close()
    lock = tmp_path / ".__pcm_ops_tools.lock"
    lock.write_text(str(int(time.time()) - 60))  # the next rotation was due a minute ago
    # When: the next process sets up logging, writing nothing yet
    configure_logging(log_file, rotation=Rotation(max_bytes=0, backups=6, when="H"))
    # Then: the old lines are in a copy, and the runbook's `tail -f` finds a (new) file
    copies = rotated_copies(log_file)
    assert len(copies) == 1 and copies[0].read_text().endswith("yesterday\n")
    assert log_file.exists() and log_file.read_text() == ""
    assert stat.S_IMODE(log_file.stat().st_mode) == 0o600
