"""Online backup of a large SQLite database while a writer keeps committing.

    python bench/bench_backup.py [--size-mb 1024] [--runs 1] [--keep]

Builds a PCM-Ops Tools database (init_db, then a filler table of random 4 KB blobs up to
--size-mb) in a temp directory, starts a writer process that commits one small row per
transaction in a loop with the server's settings (WAL, synchronous=FULL, busy_timeout 10 s),
then times `backend.db.backup.take_backup` (the code behind `pcm-ops db backup`): SQLite's
backup API inside one read transaction, PRAGMA integrity_check of the copy, fsync, SHA-256.

Reported: backup time and throughput (copy only, and end to end with check and hash), the
writer's commits per second before and during the backup, and its longest stall (the longest
time between two consecutive commits returning) during the backup; target: no stall > 100 ms.
"""

from __future__ import annotations

import argparse
import itertools
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import machine_note, percentile, print_table, say

from backend.core.config import Settings
from backend.db import backup
from backend.db.init_db import init_db

WRITER = r"""
import json, sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=10)
conn.execute("PRAGMA journal_mode=WAL")
conn.execute("PRAGMA synchronous=FULL")
conn.execute("PRAGMA busy_timeout=10000")
conn.execute("CREATE TABLE IF NOT EXISTS bench_ticks (n INTEGER PRIMARY KEY, at REAL)")
out = open(sys.argv[2], "w")
n = 0
while True:
    n += 1
    conn.execute("INSERT INTO bench_ticks VALUES (?, ?)", (n, time.time()))
    out.write(f"{time.monotonic()}\n")
    if n % 50 == 0:
        out.flush()
"""


def fill(db: Path, size_mb: int) -> None:
    import sqlite3

    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE bench_filler (id INTEGER PRIMARY KEY, blob BLOB)")
    rows = size_mb * 1024 // 4
    batch = 2500
    for start in range(0, rows, batch):
        conn.execute("BEGIN")
        conn.executemany(
            "INSERT INTO bench_filler (blob) VALUES (randomblob(4000))",
            [()] * min(batch, rows - start),
        )
        conn.execute("COMMIT")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


def stalls(stamps: list[float], start: float, end: float) -> tuple[float, int, float]:
    """(longest gap in ms, commits, commits/s) between start and end."""
    inside = [t for t in stamps if start <= t <= end]
    if len(inside) < 2:
        return (end - start) * 1000, len(inside), 0.0
    edges = [start, *inside, end]
    gap = max(b - a for a, b in itertools.pairwise(edges))
    return gap * 1000, len(inside), len(inside) / (end - start)


def run(size_mb: int, keep: bool) -> dict[str, float]:
    root = Path(tempfile.mkdtemp(prefix="bench_backup_"))
    try:
        settings = Settings(data_dir=root / "data", log_dir=root / "logs")
        init_db(settings)
        t0 = time.perf_counter()
        fill(settings.sqlite_path, size_mb)
        say(
            f"  filled {settings.sqlite_path.stat().st_size / 2**20:.0f} MB in "
            f"{time.perf_counter() - t0:.1f} s"
        )
        stamps_file = root / "writer.txt"
        writer = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(settings.sqlite_path), str(stamps_file)]
        )
        try:
            time.sleep(2.0)  # writer at steady state
            copy_done: list[float] = []

            def progress(done: int, total: int) -> None:
                if done == total and not copy_done:
                    copy_done.append(time.monotonic())

            start = time.monotonic()
            info = backup.take_backup(settings, note="bench", progress=progress)
            end = time.monotonic()
            time.sleep(1.0)
        finally:
            writer.kill()
            writer.wait()
        stamps = [float(x) for x in stamps_file.read_text().split()]
        before_gap, _, before_rate = stalls(stamps, start - 1.5, start)
        gap, commits, rate = stalls(stamps, start, end)
        inside = [t for t in stamps if start <= t <= end]
        gaps = [(b - a) * 1000 for a, b in itertools.pairwise(inside)]
        worst = max(itertools.pairwise([start, *inside, end]), key=lambda p: p[1] - p[0])
        copied = copy_done[0] if copy_done else end
        say(
            f"  longest stall began {(worst[0] - start) * 1000:.0f} ms after the start "
            f"(copy finished at {(copied - start) * 1000:.0f} ms, backup at "
            f"{(end - start) * 1000:.0f} ms)"
        )
        copy_s = (copy_done[0] if copy_done else end) - start
        result = {
            "size_mb": info.size / 2**20,
            "copy_s": copy_s,
            "total_s": end - start,
            "copy_mb_s": info.size / 2**20 / copy_s,
            "total_mb_s": info.size / 2**20 / (end - start),
            "rate_before": before_rate,
            "rate_during": rate,
            "commits_during": commits,
            "max_stall_ms": gap,
            "p99_gap_ms": percentile(gaps, 99),
            "max_gap_before_ms": before_gap,
        }
        if keep:
            say(f"  kept {root}")
        return result
    finally:
        if not keep:
            shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=1024)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    say(f"machine: {machine_note()}")
    results = []
    for n in range(args.runs):
        say(f"run {n + 1}/{args.runs}: {args.size_mb} MB")
        results.append(run(args.size_mb, args.keep))
    rows = [
        [
            f"{r['size_mb']:.0f} MB",
            f"{r['copy_s']:.2f} s ({r['copy_mb_s']:.0f} MB/s)",
            f"{r['total_s']:.2f} s ({r['total_mb_s']:.0f} MB/s)",
            f"{r['rate_before']:.0f} -> {r['rate_during']:.0f}",
            f"{r['max_stall_ms']:.1f} ms",
            f"{r['p99_gap_ms']:.1f} ms",
            f"{r['max_gap_before_ms']:.1f} ms",
        ]
        for r in results
    ]
    print_table(
        "Online backup while a writer commits (synchronous=FULL)",
        [
            "database",
            "copy",
            "backup + check + hash",
            "writer commits/s before -> during",
            "longest writer stall",
            "p99 gap",
            "longest gap before",
        ],
        rows,
    )
    if args.json:
        print(json.dumps(results, indent=2))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
