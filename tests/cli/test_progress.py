"""The progress bar of `pcm-ops db backup|restore`: drawn on stderr in a terminal, for databases
of PROGRESS_FROM_BYTES or more; the command runs as a real process under a pseudo-terminal."""

from __future__ import annotations

import os
import pty
import select
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from backend.cli.db import PROGRESS_FROM_BYTES
from tests.cli.conftest import Cli
from tests.e2e.conftest import clean_env, free_port

PCM_OPS = str(Path(sys.executable).parent / "pcm-ops")
CHUNK = 1 << 20


def grow(db: Path, size: int) -> None:
    """Add a filler table until the database file holds `size` bytes or more."""
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE filler (data BLOB)")
        conn.execute(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?) "
            "INSERT INTO filler SELECT randomblob(?) FROM n",
            (size // CHUNK + 1, CHUNK),
        )
    conn.close()  # the last connection folds the WAL into the file
    assert db.stat().st_size >= size


def run(cli: Cli, *args: str, terminal: bool) -> tuple[int, str]:
    """`pcm-ops ARGS` with stderr on a pseudo-terminal (or a pipe); its exit code and stderr."""
    env = {**clean_env(cli.data_dir.parent, free_port()), **cli.env, "COLUMNS": "100"}
    env.pop("NO_COLOR", None)
    if not terminal:
        done = subprocess.run(
            [PCM_OPS, *args], env=env, capture_output=True, text=True, timeout=60, check=False
        )
        return done.returncode, done.stderr
    master, slave = pty.openpty()
    try:
        proc = subprocess.Popen([PCM_OPS, *args], env=env, stdout=subprocess.DEVNULL, stderr=slave)
        os.close(slave)
        out = bytearray()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.1)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: every writer of the terminal has closed it
                    break
                if not chunk:
                    break
                out += chunk
            elif proc.poll() is not None:
                break
        code = proc.wait(timeout=10)
    finally:
        os.close(master)
    return code, out.decode(errors="replace")


@pytest.fixture
def large(initialized_cli: Cli) -> Cli:
    grow(initialized_cli.db, PROGRESS_FROM_BYTES)
    return initialized_cli


def test_progress_bar_in_a_terminal_for_a_large_database(large: Cli) -> None:
    code, shown = run(large, "db", "backup", terminal=True)
    assert code == 0, shown
    assert "backing up" in shown and "100%" in shown
    backups = list(large.data_dir.glob("pcm_ops_tools_backup_*.db"))
    assert len(backups) == 1

    code, shown = run(large, "db", "restore", backups[0].name, terminal=True)
    assert code == 0, shown
    assert "backing up the current database" in shown and "100%" in shown

    # Not a terminal (a script, a pipe): no bar, nothing but errors on stderr.
    code, shown = run(large, "db", "backup", terminal=False)
    assert code == 0, shown
    assert "backing up" not in shown and "%" not in shown


def test_no_progress_bar_for_a_small_database(initialized_cli: Cli) -> None:
    assert initialized_cli.db.stat().st_size < PROGRESS_FROM_BYTES
    code, shown = run(initialized_cli, "db", "backup", terminal=True)
    assert code == 0, shown
    assert "backing up" not in shown and "%" not in shown
