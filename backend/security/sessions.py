"""Server-side sessions in the database; the browser's cookie holds only a signed random id.

The API other modules use (no FastAPI here):

    store: SessionStore = request.app.state.session_store
    sid = request.state.session_id            # None for bearer-token callers
    data = store.read(sid)                    # a copy of the session's data (dict)
    store.update(sid, lambda d: d.update(aws_credentials=...))   # one update
    store.update(sid, lambda d: d.pop("aws_credentials", None))

`update(session_id, mutate)` runs `mutate` on the session's data and stores the result:

- `thread_safe_sessions` on: updates of one session are serialized in the process (striped
  locks) and written with a compare-and-set on the row's revision, retried on conflict, so that
  concurrent updates from any worker are never lost. Off (legacy): read, mutate, write back;
  concurrent updates overwrite each other.
- `atomic_session_updates` on: `mutate` works on a copy that is written in one statement only
  if it returns normally; an exception leaves the session as it was. Off (legacy): every
  assignment `mutate` makes is written at once, field by field, so a failure half-way leaves
  the fields set before it.

Reserved keys: "csrf_token" (set at sign-in, see backend.security.csrf). Values must be JSON.
Sessions end after `idle_timeout` seconds without a request or `absolute_timeout` after sign-in.
"""

from __future__ import annotations

import copy
import hashlib
import json
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session, sessionmaker

from backend.db.base import utcnow
from backend.security.errors import SessionNotFound
from backend.security.flag import enabled
from backend.security.models import User, WebSession

FlagCheck = Callable[[str], bool]
_STRIPES = 64
_CAS_ATTEMPTS = 50


def hash_session_id(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class LoadedSession:
    """A live session and its user, as a request sees it."""

    session_id: str
    user_id: int
    username: str
    role: str
    data: dict[str, Any]


class _WriteThrough(dict[str, Any]):
    """A dict whose every assignment is written at once (the legacy field-by-field update)."""

    def __init__(self, data: dict[str, Any], write: Callable[[str, Any, bool], None]) -> None:
        super().__init__(data)
        self._write = write

    def __setitem__(self, key: str, value: Any) -> None:
        super().__setitem__(key, value)
        self._write(key, value, False)

    def __delitem__(self, key: str) -> None:
        super().__delitem__(key)
        self._write(key, None, True)

    def pop(self, key: str, *default: Any) -> Any:
        present = key in self
        value = super().pop(key, *default)
        if present:
            self._write(key, None, True)
        return value

    def update(self, *args: Any, **kwargs: Any) -> None:
        for key, value in dict(*args, **kwargs).items():
            self[key] = value

    def setdefault(self, key: str, default: Any = None) -> Any:
        if key not in self:
            self[key] = default
        return self[key]


class SessionStore:
    """Create, load, read, update and end server-side sessions."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        idle_timeout: float,
        absolute_timeout: float,
        flag: FlagCheck = enabled,
    ) -> None:
        self.sessions = sessions
        self.idle_timeout = timedelta(seconds=idle_timeout)
        self.absolute_timeout = timedelta(seconds=absolute_timeout)
        # last_seen_at is written at most this often: a read is not a write on every request.
        self.touch_every = timedelta(seconds=min(60.0, idle_timeout / 4))
        self.flag = flag
        self._locks = [threading.Lock() for _ in range(_STRIPES)]

    # -- lifecycle ---------------------------------------------------------------------
    def create(
        self, *, user_id: int, client_address: str = "", data: dict[str, Any] | None = None
    ) -> str:
        """A new session for `user_id`; returns its id (shown to the browser, stored hashed)."""
        session_id = secrets.token_urlsafe(32)
        with self.sessions.begin() as s:
            s.add(
                WebSession(
                    id_hash=hash_session_id(session_id),
                    user_id=user_id,
                    data=json.dumps(data or {}),
                    revision=0,
                    client_address=client_address[:64],
                )
            )
        return session_id

    def delete(self, session_id: str) -> bool:
        """End a session; True if it existed."""
        with self.sessions.begin() as s:
            result = s.execute(
                delete(WebSession).where(WebSession.id_hash == hash_session_id(session_id))
            )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    def load(self, session_id: str) -> LoadedSession | None:
        """The live session with this id and its enabled user, or None (expired ones are ended)."""
        id_hash = hash_session_id(session_id)
        now = utcnow()
        with self.sessions.begin() as s:
            row = s.get(WebSession, id_hash)
            if row is None:
                return None
            user = s.get(User, row.user_id)
            expired = (
                now - row.created_at > self.absolute_timeout
                or now - row.last_seen_at > self.idle_timeout
            )
            if expired or user is None or user.disabled:
                s.delete(row)
                return None
            if now - row.last_seen_at >= self.touch_every:
                s.execute(
                    update(WebSession).where(WebSession.id_hash == id_hash).values(last_seen_at=now)
                )
            return LoadedSession(
                session_id=session_id,
                user_id=user.id,
                username=user.username,
                role=user.role,
                data=json.loads(row.data),
            )

    # -- data --------------------------------------------------------------------------
    def _row(self, s: Session, id_hash: str) -> tuple[dict[str, Any], int]:
        found = s.execute(
            select(WebSession.data, WebSession.revision).where(WebSession.id_hash == id_hash)
        ).first()
        if found is None:
            raise SessionNotFound("the session has ended")
        return json.loads(found[0]), int(found[1])

    def read(self, session_id: str) -> dict[str, Any]:
        """A copy of the session's data; SessionNotFound when the session has ended."""
        with self.sessions() as s:
            return self._row(s, hash_session_id(session_id))[0]

    def update(self, session_id: str, mutate: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
        """Apply `mutate` to the session's data and store it (see the module docstring)."""
        thread_safe = self.flag("thread_safe_sessions")
        atomic = self.flag("atomic_session_updates")
        id_hash = hash_session_id(session_id)
        if not thread_safe:
            return self._update_once(id_hash, mutate, atomic=atomic, compare=False)
        with self._lock(id_hash):
            for _ in range(_CAS_ATTEMPTS):
                try:
                    return self._update_once(id_hash, mutate, atomic=atomic, compare=True)
                except _Conflict:
                    time.sleep(0.005)  # another worker wrote first: read again, mutate again
        raise SessionNotFound("the session is too busy to update; try again")

    def _lock(self, id_hash: str) -> threading.Lock:
        return self._locks[int(id_hash[:8], 16) % _STRIPES]

    def _update_once(
        self,
        id_hash: str,
        mutate: Callable[[dict[str, Any]], None],
        *,
        atomic: bool,
        compare: bool,
    ) -> dict[str, Any]:
        with self.sessions() as s:
            data, revision = self._row(s, id_hash)
        if not atomic:
            target = _WriteThrough(data, lambda k, v, gone: self._write_field(id_hash, k, v, gone))
            mutate(target)
            return dict(target)
        new = copy.deepcopy(data)
        mutate(new)
        encoded = json.dumps(new)
        with self.sessions.begin() as s:
            query = update(WebSession).where(WebSession.id_hash == id_hash)
            if compare:
                query = query.where(WebSession.revision == revision)
            result = s.execute(query.values(data=encoded, revision=WebSession.revision + 1))
            if not result.rowcount:  # type: ignore[attr-defined]
                if compare and self._exists(s, id_hash):
                    raise _Conflict
                raise SessionNotFound("the session has ended")
        return new

    def _exists(self, s: Session, id_hash: str) -> bool:
        return (
            s.scalar(select(WebSession.revision).where(WebSession.id_hash == id_hash)) is not None
        )

    def _write_field(self, id_hash: str, key: str, value: Any, gone: bool) -> None:
        # The legacy write: read the stored data, change one field, write it all back.
        with self.sessions.begin() as s:
            data, _ = self._row(s, id_hash)
            if gone:
                data.pop(key, None)
            else:
                data[key] = value
            s.execute(
                update(WebSession)
                .where(WebSession.id_hash == id_hash)
                .values(data=json.dumps(data), revision=WebSession.revision + 1)
            )


class _Conflict(Exception):
    """The row changed between read and write (thread-safe mode retries)."""
