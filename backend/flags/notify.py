"""PostgreSQL LISTEN/NOTIFY for flag changes: every worker of every instance hears a committed
change at once, instead of finding it at its next poll of the version row.

A change announces its store version with `pg_notify` inside its own transaction, so the
notification goes out when (and only if) it commits. Each worker's poller waits on a dedicated
connection that LISTENs; it still reads the version row after every wake-up and at least once
per `timeout`, so a lost notification (the listening connection dropped) costs at most that.
SQLite has no notifications: there the poller keeps polling.
"""

from __future__ import annotations

import contextlib
from typing import Any

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

CHANNEL = "pcm_ops_flags"


def announce(session: Session, version: int) -> None:
    """Queue the change's notification on the caller's transaction (PostgreSQL only)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(func.pg_notify(CHANNEL, str(version))))


class Listener:
    """A LISTEN connection of its own, outside the engine's pool."""

    def __init__(self, engine: Engine) -> None:
        if engine.dialect.name != "postgresql":
            raise ValueError("LISTEN/NOTIFY needs PostgreSQL")
        self.engine = engine
        self._conn: Any = None  # the psycopg connection while listening
        self.notified = 0  # wake-ups by a notification, for health and tests

    @classmethod
    def for_engine(cls, engine: Engine) -> Listener | None:
        return cls(engine) if engine.dialect.name == "postgresql" else None

    @property
    def connected(self) -> bool:
        return self._conn is not None

    @property
    def backend_pid(self) -> int | None:
        """The server process of the listening connection (what an operator would kill)."""
        return None if self._conn is None else int(self._conn.info.backend_pid)

    def wait(self, timeout: float) -> bool:
        """Block until a change is announced (True) or `timeout` passes (False). Connects on
        first use; a broken connection raises, and the next call connects again."""
        if self._conn is None:
            pooled = self.engine.raw_connection()
            conn: Any = pooled.driver_connection
            pooled.detach()  # never handed back to the pool: it stays LISTENing
            try:
                conn.autocommit = True
                conn.execute(f"LISTEN {CHANNEL}")
            except Exception:
                with contextlib.suppress(Exception):
                    conn.close()
                raise
            self._conn = conn
        try:
            for _ in self._conn.notifies(timeout=timeout, stop_after=1):
                self.notified += 1
                return True
        except Exception:
            self.close()
            raise
        return False

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = None
