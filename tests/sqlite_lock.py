"""Contention on a real SQLite file for tests: another connection holding the write lock."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path


class WriteLock:
    """Another connection holding SQLite's write lock (`BEGIN IMMEDIATE`) until released."""

    def __init__(self, database: Path) -> None:
        self.conn = sqlite3.connect(database, isolation_level=None, check_same_thread=False)
        self.conn.execute("BEGIN IMMEDIATE")
        self.released = threading.Event()
        self._guard = threading.Lock()

    def release(self) -> None:
        with self._guard:
            if not self.released.is_set():
                self.conn.execute("COMMIT")
                self.conn.close()
                self.released.set()

    def release_after(self, seconds: float) -> threading.Timer:
        timer = threading.Timer(seconds, self.release)
        timer.start()
        return timer
