"""Helpers shared by the benchmarks: robust statistics, machine description, table output.

Not a test module: the benchmarks are run by hand (`python bench/<name>.py`), never by pytest.
"""

from __future__ import annotations

import contextlib
import math
import os
import platform
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
if str(PROJECT_ROOT) not in sys.path:  # run as `python bench/x.py`: make `backend` importable
    sys.path.insert(0, str(PROJECT_ROOT))

try:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    # Wide enough for the tables when the output is piped into a file.
    _console: Console | None = Console(highlight=False, width=None if sys.stdout.isatty() else 160)
except ImportError:  # pragma: no cover - rich is a dependency of the project
    _console = None


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) with linear interpolation between closest ranks."""
    if not values:
        return math.nan
    data = sorted(values)
    if len(data) == 1:
        return data[0]
    pos = (len(data) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = math.ceil(pos)
    return data[lo] + (data[hi] - data[lo]) * (pos - lo)


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else math.nan


def machine_note() -> str:
    cpus = os.cpu_count() or 0
    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        affinity = cpus
    load = ""
    with contextlib.suppress(OSError):
        load = " load avg " + " ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"{affinity} usable cores ({cpus} online), {platform.machine()}, "
        f"{platform.system()} {platform.release()}, "
        f"Python {platform.python_version()} ({platform.python_implementation()}),{load}"
    )


def code_note() -> str:
    """Which code is measured: the checkout's commit, and whether it has local changes."""
    import subprocess

    try:
        sha = subprocess.run(
            ["git", "-C", str(PROJECT_ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(PROJECT_ROOT), "status", "--porcelain", "--", "backend"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return f"{PROJECT_ROOT} (not a git checkout)"
    return f"{PROJECT_ROOT} at {sha}" + (" with uncommitted changes in backend/" if dirty else "")


def print_table(
    title: str, columns: Sequence[str], rows: Sequence[Sequence[str]], *, text_columns: int = 1
) -> None:
    """A rich table when rich is available, else aligned plain text; the first `text_columns`
    columns are left-aligned, the (numeric) rest right-aligned."""
    if _console is not None:
        table = Table(title=escape(title), title_justify="left")
        for i, col in enumerate(columns):
            table.add_column(escape(col), justify="left" if i < text_columns else "right")
        for row in rows:
            table.add_row(*(escape(cell) for cell in row))
        _console.print(table)
        return
    widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(columns)]
    print(title)
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)))
    for row in rows:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)))


def say(text: str = "") -> None:
    if _console is not None:
        _console.print(text, markup=False)
    else:
        print(text)
