"""Background WAL checkpoints for SQLite, so that no request's commit pays for one.

In WAL mode SQLite copies committed pages back into the database file ("checkpoint") inside
whichever commit pushes the log past `wal_autocheckpoint` pages, and a log that is never
reset makes every commit append to an ever longer file. A server runs this thread instead:
shortly after each change it runs a PASSIVE checkpoint (it never blocks readers or writers),
and the next commit starts the log again from its beginning. `wal_autocheckpoint` stays as it
is, the safety net for processes without this thread (the CLI).
"""

from __future__ import annotations

import logging
from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from backend.core.periodic import Periodic

log = logging.getLogger("pcm_ops_tools.db")


class WalCheckpointer:
    def __init__(self, engine: Engine, *, interval: float = 0.2) -> None:
        database = engine.url.database
        if engine.dialect.name != "sqlite" or not database or database == ":memory:":
            raise ValueError("WAL checkpoints are for SQLite database files")
        self.engine = engine
        self.wal = Path(f"{database}-wal")
        self.interval = interval
        self.checkpoints = 0
        self._seen: tuple[int, int] | None = None
        self._loop = Periodic("wal-checkpoint", interval, self.run_once)

    @classmethod
    def for_engine(cls, engine: Engine, **kwargs: float) -> WalCheckpointer | None:
        """A checkpointer for a SQLite file; None for other databases (and in-memory ones)."""
        database = engine.url.database
        if engine.dialect.name != "sqlite" or not database or database == ":memory:":
            return None
        return cls(engine, **kwargs)

    def start(self) -> None:
        self._loop.start()

    def stop(self) -> None:
        self._loop.stop()

    def run_once(self) -> bool:
        """Checkpoint if the log changed since the last look; True when one ran."""
        try:
            st = self.wal.stat()
        except OSError:
            return False  # no log: nothing committed since the last connection closed
        seen = (st.st_mtime_ns, st.st_size)
        if seen == self._seen:
            return False
        try:
            with self.engine.connect() as conn:
                conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)").all()
        except SQLAlchemyError as exc:
            # Busy or down: the commit-time checkpoint still covers it; try again next time.
            log.warning("background WAL checkpoint failed: %s", str(exc).splitlines()[0])
            return False
        self._seen = seen
        self.checkpoints += 1
        return True
