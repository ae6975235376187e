"""prometheus_client's multiprocess mode: every uvicorn worker writes its counters and
histograms to files in one directory, and the worker that answers a scrape adds up the files
of all of them (the dead included, so that counters never go back).

`pcm-ops server start` creates the directory owner-only, empties it and passes it to the
workers in PROMETHEUS_MULTIPROC_DIR, which prometheus_client reads when it is imported.
"""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path

from prometheus_client import values
from prometheus_client.multiprocess import mark_process_dead

from backend.core.filemodes import private_dir
from backend.core.server_state import alive

ENV = "PROMETHEUS_MULTIPROC_DIR"
# The names prometheus_client gives its files: <type>[_<gauge mode>]_<pid>.db
_FILE = re.compile(r"^(?:counter|gauge|histogram|summary)_(?:[a-z]+_)?(\d+)\.db$")
_LIVE_GAUGE = re.compile(r"^gauge_live[a-z]*_(\d+)\.db$")


def active() -> Path | None:
    """The directory when this process counts in multiprocess mode, else None.

    prometheus_client decides once, when imported; what it decided is what counts (the
    variable set later, as `python -m backend.main` does for its workers, changes nothing
    for the process that set it)."""
    directory = os.environ.get(ENV)
    if directory is None or values.ValueClass is values.MutexValue:
        return None
    return Path(directory)


def prepare(directory: Path) -> None:
    """Create `directory` owner-only and remove the files of an earlier run (whose counts
    would otherwise be added to the new server's). Only prometheus_client's files go."""
    private_dir(directory)
    for path in directory.iterdir():
        if _FILE.match(path.name) and path.is_file():
            path.unlink(missing_ok=True)


def reap(directory: Path) -> list[int]:
    """mark_process_dead for every worker whose live gauges are still there but which is gone
    (killed, crashed): a live gauge adds up the processes that are running only."""
    dead: set[int] = set()
    with contextlib.suppress(OSError):
        for path in directory.iterdir():
            match = _LIVE_GAUGE.match(path.name)
            if match and not alive(int(match.group(1))):
                dead.add(int(match.group(1)))
    for pid in sorted(dead):
        mark_process_dead(pid, str(directory))  # type: ignore[no-untyped-call]
    return sorted(dead)


def leave(directory: Path | None) -> None:
    """This worker stops: its live gauges no longer count."""
    if directory is not None:
        with contextlib.suppress(OSError):
            mark_process_dead(os.getpid(), str(directory))  # type: ignore[no-untyped-call]
