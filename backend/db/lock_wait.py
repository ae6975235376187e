"""How long a statement waits for a lock another connection holds (SQLite's busy timeout,
PostgreSQL's lock_timeout) before it fails as busy: contention is waited out, within a bound.

Apart from backend.db.session so that the flag engine reads the bound without importing the
settings (which import the engine's errors)."""

from __future__ import annotations

import weakref

from sqlalchemy import Engine

BUSY_TIMEOUT = 10.0
_bounds: weakref.WeakKeyDictionary[Engine, float] = weakref.WeakKeyDictionary()


def remember(engine: Engine, seconds: float) -> None:
    _bounds[engine] = seconds


def busy_timeout_of(engine: Engine) -> float:
    """The lock wait bound `engine` was made with (BUSY_TIMEOUT for engines made elsewhere)."""
    return _bounds.get(engine, BUSY_TIMEOUT)
