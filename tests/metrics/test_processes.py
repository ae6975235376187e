"""Which processes make up the server, for the process_* metrics."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from backend.metrics.processes import ServerProcessCollector, children


def test_children__of_this_process() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert child.pid in children(os.getpid())
    finally:
        child.kill()
        child.wait()


def test_children__without_per_task_lists__read_from_every_process_parent(tmp_path: Path) -> None:
    # Given: a procfs whose tasks have no `children` file (a kernel built without it)
    (tmp_path / "10" / "task" / "10").mkdir(parents=True)
    for pid, parent in ((11, 10), (12, 10), (13, 1)):
        (tmp_path / str(pid)).mkdir()
        (tmp_path / str(pid) / "stat").write_text(f"{pid} (python (x) y) S {parent} {pid} 0\n")
    (tmp_path / "self").mkdir()
    # Then
    assert children(10, tmp_path) == [11, 12]


def test_one_process__its_own_figures() -> None:
    found = {
        f.name: f.samples[0].value for f in ServerProcessCollector(whole_server=False).collect()
    }
    assert found["pcm_server_processes"] == 1
    assert found["process_resident_memory_bytes"] > 0
