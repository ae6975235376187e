"""Starting while the database is unreachable: telling an outage (wait it out on the last-known
flag state) from a mistake in the settings (refuse to start), and the init_db that runs in the
background once the database answers again.

"Unreachable" for PostgreSQL is a connection that fails (refused, timed out, the server shutting
down or not accepting connections); a database or role that does not exist, or a rejected
password, is a configuration error. For SQLite it is a database file that cannot be opened or
read (its volume not mounted, an I/O error). A lock another connection holds is contention, not
an outage (backend.flags.journal.store_busy): it is waited out, then refused as busy.
"""

from __future__ import annotations

import logging
import threading

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from backend.core.config import Settings
from backend.core.periodic import Periodic
from backend.db.init_db import InitReport, init_db
from backend.flags import journal

log = logging.getLogger("pcm_ops_tools.db")

# PostgreSQL connection errors carry no SQLSTATE: the server's message tells settings apart.
_SETTINGS_PROBLEMS = (
    "does not exist",  # database or role
    "authentication failed",
    "no pg_hba.conf entry",
    "no password supplied",
)
_SQLITE_OUTAGES = ("unable to open database file", "disk i/o error")


def unreachable(exc: BaseException | None) -> bool:
    """Whether `exc` says the database cannot be reached now, as opposed to wrong settings,
    a missing schema or a bug."""
    if not isinstance(exc, SQLAlchemyError) or not journal.store_unreachable(exc):
        return False
    message = str(exc).lower()
    if type(getattr(exc, "orig", None)).__module__ == "sqlite3":
        return any(m in message for m in _SQLITE_OUTAGES)
    return not any(m in message for m in _SETTINGS_PROBLEMS)


def first_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".splitlines()[0]


class PendingInit:
    """init_db for a process that started without its database: tried every `interval`
    seconds until it has run once (under init_db's lock, so one process migrates and the
    others find the schema current)."""

    def __init__(self, settings: Settings, engine: Engine, interval: float = 1.0) -> None:
        self.settings = settings
        self.engine = engine
        self.pending = False
        self.error: str | None = None
        self.report: InitReport | None = None
        self._lock = threading.Lock()
        self._periodic = Periodic("pending-init", interval, self.attempt)

    def start(self) -> None:
        self.pending = True
        self._periodic.start()

    def stop(self) -> None:
        self._periodic.stop()

    def attempt(self) -> bool:
        """Run init_db now; True once it has succeeded (then a no-op)."""
        with self._lock:
            if not self.pending:
                return True
            try:
                report = init_db(self.settings, self.engine)
            except Exception as exc:  # any failure: log it once, try again later
                problem = first_line(exc)
                if problem != self.error:
                    if isinstance(exc, SQLAlchemyError) and unreachable(exc):
                        log.warning("database unreachable, migrations pending: %s", problem)
                    else:
                        log.error("migrations pending, init_db failed: %s", problem)
                self.error = problem
                return False
            self.report, self.pending, self.error = report, False, None
        if report.migrated:
            log.warning(
                "Database answers again: schema upgraded from %s to %s, defaults seeded",
                ", ".join(report.schema_before) or "empty",
                ", ".join(report.schema_after),
            )
        else:
            log.warning(
                "Database answers again: schema already current (%s), defaults seeded",
                ", ".join(report.schema_after),
            )
        return True
