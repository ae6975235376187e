"""Prometheus' standard process metrics (process_cpu_seconds_total, process_resident_memory_bytes,
process_open_fds, process_start_time_seconds, …) for the whole server.

A scrape is answered by one worker of several, so the figures of one process would jump from
scrape to scrape. With several workers the figures are those of the server's processes (the
uvicorn supervisor and every worker) added up; the start time is the earliest (the server's)
and the descriptor limit the smallest. With one process they are that process's own, as
prometheus_client's ProcessCollector gives them.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
from collections.abc import Iterator
from pathlib import Path

from prometheus_client import ProcessCollector
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

PROC = Path("/proc")
_SUM = {"cpu_seconds", "resident_memory_bytes", "virtual_memory_bytes", "open_fds"}


def supervisor_pid() -> int:
    """The uvicorn supervisor when this process is one of its workers, else this process."""
    parent = multiprocessing.parent_process()
    return parent.pid if parent is not None and parent.pid is not None else os.getpid()


def children(pid: int, proc: Path = PROC) -> list[int]:
    """The processes whose parent is `pid` (`proc`: where procfs is mounted)."""
    found: set[int] = set()
    readable = False
    with contextlib.suppress(OSError):
        for task in (proc / str(pid) / "task").iterdir():
            try:
                listed = (task / "children").read_text()
            except OSError:
                continue
            readable = True
            found.update(int(c) for c in listed.split())
    if readable:
        return sorted(found)
    # Kernels without /proc/<pid>/task/<tid>/children: read every process's parent.
    for entry in proc.iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    found.add(int(entry.name))
    return sorted(found)


class ServerProcessCollector(Collector):
    """process_* of this server: this process alone, or (`whole_server`) the supervisor and all
    its children added up."""

    def __init__(self, whole_server: bool) -> None:
        self.whole_server = whole_server
        self._pid: int | str = "self"
        self._reader = ProcessCollector(pid=lambda: self._pid, registry=None)

    def pids(self) -> list[int | str]:
        if not self.whole_server:
            return ["self"]
        root = supervisor_pid()
        return [root, *children(root)]

    def collect(self) -> Iterator[Metric]:
        merged: dict[str, Metric] = {}
        counted = 0
        for pid in self.pids():
            self._pid = pid
            families = list(self._reader.collect())
            counted += bool(families)
            for family in families:
                short = family.name.removeprefix("process_")
                kept = merged.get(family.name)
                if kept is None:
                    merged[family.name] = family
                    continue
                new, old = family.samples[0].value, kept.samples[0].value
                if short in _SUM:
                    value = old + new
                elif short in ("start_time_seconds", "max_fds"):
                    value = min(old, new)
                else:
                    continue
                kept.samples[0] = kept.samples[0]._replace(value=value)
        yield from merged.values()
        yield GaugeMetricFamily(
            "pcm_server_processes",
            "Processes whose figures the process_* metrics add up (supervisor and workers)",
            counted,
        )
