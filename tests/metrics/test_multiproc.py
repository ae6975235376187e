"""The multiprocess directory: owner-only, emptied of an earlier run's files at start, dead
workers' live gauges dropped."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

from backend.metrics import multiproc


def test_prepare__creates_it_owner_only_and_removes_only_prometheus_files(tmp_path: Path) -> None:
    # Given: an earlier run's files and a file that is not prometheus_client's
    directory = tmp_path / "prometheus_multiproc"
    directory.mkdir(mode=0o755)
    os.chmod(directory, 0o755)
    old = ["counter_123.db", "histogram_123.db", "gauge_livesum_123.db", "gauge_all_9.db"]
    for name in [*old, "notes.txt"]:
        (directory / name).write_bytes(b"x")
    # When
    multiproc.prepare(directory)
    # Then
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert sorted(p.name for p in directory.iterdir()) == ["notes.txt"]
    multiproc.prepare(tmp_path / "new")  # and creates one that is missing
    assert stat.S_IMODE((tmp_path / "new").stat().st_mode) == 0o700


def test_reap__drops_the_live_gauges_of_dead_processes_only(tmp_path: Path) -> None:
    # Given: live gauges of this (living) process and of one that has exited
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        text=True,
        capture_output=True,
        check=True,
    )
    dead = int(gone.stdout)
    me = os.getpid()
    for name in (f"gauge_livesum_{me}.db", f"gauge_livesum_{dead}.db", f"counter_{dead}.db"):
        (tmp_path / name).write_bytes(b"")
    # When
    reaped = multiproc.reap(tmp_path)
    # Then: the dead one's counts stay (counters never go back), its live gauge goes
    assert reaped == [dead]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [f"gauge_livesum_{me}.db", f"counter_{dead}.db"]
    )
