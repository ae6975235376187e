"""Database engine and sessions; `from backend.db.session import engine` works."""

from __future__ import annotations

from functools import lru_cache, partial
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlalchemy import Engine, create_engine, event, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.orm import Session, sessionmaker

from backend.core.config import Settings, get_settings
from backend.core.filemodes import create_private_file, private_dir
from backend.core.primary_file import Backend
from backend.db.lock_wait import BUSY_TIMEOUT, remember

PG_CONNECT_TIMEOUT = 5  # seconds


def _sqlite_pragmas(dbapi_connection: Any, _record: Any, *, busy_ms: int) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    # FULL: a flag change is on disk before its 200 is sent.
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute(f"PRAGMA busy_timeout={busy_ms}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def make_engine(url: str, *, busy_timeout: float = BUSY_TIMEOUT, **kwargs: Any) -> Engine:
    """An engine for `url`; SQLite gets WAL, full sync and a busy timeout, PostgreSQL a lock
    timeout, both `busy_timeout` seconds."""
    busy_ms = max(1, round(busy_timeout * 1000))
    if url.startswith("sqlite"):
        new = create_engine(
            url, connect_args={"timeout": busy_timeout, "check_same_thread": False}, **kwargs
        )
        event.listen(new, "connect", partial(_sqlite_pragmas, busy_ms=busy_ms))
    else:
        connect_args = kwargs.pop("connect_args", {})
        given = {**make_url(url).query, **connect_args}
        if url.startswith("postgresql") and "options" not in given:
            connect_args = {**connect_args, "options": f"-c lock_timeout={busy_ms}"}
        if url.startswith("postgresql") and "connect_timeout" not in given:
            # A server that does not answer (a partition, a host that is gone) fails in seconds
            # instead of the minutes TCP takes to give up: start-up and requests then fall back
            # on the last-known flag state.
            connect_args = {**connect_args, "connect_timeout": PG_CONNECT_TIMEOUT}
        new = create_engine(url, pool_pre_ping=True, connect_args=connect_args, **kwargs)
    remember(new, busy_timeout)
    return new


def shown_url(url: str) -> str:
    """A database URL as it may be printed or logged: the password hidden."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "(unparsable URL)"


def backend_of(url: str) -> Backend:
    """Which side of the postgresql_support switch a database URL is."""
    return "postgresql" if make_url(url).get_backend_name() == "postgresql" else "sqlite"


def existing_sqlite_url(path: Path) -> str:
    """A URL that opens the SQLite file at `path` only if it exists (never creates it)."""
    return f"sqlite:///file:{quote(str(path))}?mode=rw&uri=true"


def sqlite_file(settings: Settings) -> Path | None:
    """The SQLite database file of these settings; None for another database (or memory),
    PostgreSQL after a switch by postgresql_support included."""
    if settings.database_url is None:
        on_sqlite = settings.effective_database_url == settings.sqlite_url
        return settings.sqlite_path if on_sqlite else None
    url = make_url(settings.database_url)
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    return Path(url.database)


def database_missing(settings: Settings) -> Path | None:
    """The SQLite file these settings name when it does not exist (deleted, never set up)."""
    path = sqlite_file(settings)
    return path if path is not None and not path.exists() else None


def engine_for(settings: Settings, *, create: bool = True) -> Engine:
    """An engine on the settings' database. `create=False` (the CLI's direct access) never
    makes a SQLite file: a missing one fails to connect, as a database that is gone does,
    instead of being replaced by an empty one (only init_db sets a database up)."""
    url = settings.effective_database_url
    path = sqlite_file(settings)
    if path is not None and create and settings.database_url is None:
        # Owner-only before SQLite opens it (its -wal and -shm files copy the file's mode).
        private_dir(settings.data_dir)
        create_private_file(settings.sqlite_path)
    elif path is not None and not create:
        url = existing_sqlite_url(path)
    return make_engine(url, busy_timeout=settings.database_busy_timeout)


def session_factory(bind: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=bind, expire_on_commit=False)


@lru_cache(maxsize=1)
def _default_engine() -> Engine:
    # `python -c "from backend.db.session import engine"` (the runbook's check) must not
    # leave an empty database where the real one is missing.
    return engine_for(get_settings(), create=False)


def __getattr__(name: str) -> Any:
    # Lazy, so that importing this module never opens a database by itself.
    if name == "engine":
        return _default_engine()
    if name == "SessionLocal":
        return session_factory(_default_engine())
    raise AttributeError(name)
