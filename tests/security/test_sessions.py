"""SessionStore: timeouts, and updates under thread_safe_sessions / atomic_session_updates."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from backend.security.errors import SessionNotFound
from backend.security.sessions import SessionStore
from backend.security.users import create_user

from .conftest import PASSWORD

N = 50


class Flags:
    """A stand-in for is_enabled, switched by the test."""

    def __init__(self, **values: bool) -> None:
        self.values = values

    def __call__(self, name: str) -> bool:
        return self.values[name]


@pytest.fixture
def user_id(sessions: sessionmaker[Session]) -> int:
    with sessions.begin() as s:
        return create_user(s, username="ann", password=PASSWORD, role="operator").id


def store_with(sessions: sessionmaker[Session], **flags: bool) -> SessionStore:
    return SessionStore(sessions, idle_timeout=60, absolute_timeout=600, flag=Flags(**flags))


def increment(data: dict[str, Any]) -> None:
    data["n"] = data.get("n", 0) + 1


def run_concurrently(update: Any) -> None:
    with ThreadPoolExecutor(max_workers=N) as pool:
        for future in [pool.submit(update) for _ in range(N)]:
            future.result()


@pytest.mark.parametrize("atomic", [True, False])
def test_thread_safe_updates_lose_nothing(
    sessions: sessionmaker[Session], user_id: int, atomic: bool
) -> None:
    store = store_with(sessions, thread_safe_sessions=True, atomic_session_updates=atomic)
    sid = store.create(user_id=user_id)
    run_concurrently(lambda: store.update(sid, increment))
    assert store.read(sid)["n"] == N


def test_thread_safe_updates_survive_a_writer_in_another_process(
    sessions: sessionmaker[Session], user_id: int
) -> None:
    # Two stores (two workers) share no lock; the revision compare-and-set still serializes.
    a = store_with(sessions, thread_safe_sessions=True, atomic_session_updates=True)
    b = store_with(sessions, thread_safe_sessions=True, atomic_session_updates=True)
    sid = a.create(user_id=user_id)
    with ThreadPoolExecutor(max_workers=N) as pool:
        futures = [pool.submit((a if i % 2 else b).update, sid, increment) for i in range(N)]
        for f in futures:
            f.result()
    assert a.read(sid)["n"] == N


@pytest.mark.parametrize("atomic", [True, False])
def test_legacy_read_modify_write_loses_concurrent_updates(
    sessions: sessionmaker[Session], user_id: int, atomic: bool
) -> None:
    """Documents the off state: every request reads before any writes, so all but one of the
    50 increments are lost. The barrier makes the interleaving certain rather than likely."""
    store = store_with(sessions, thread_safe_sessions=False, atomic_session_updates=atomic)
    sid = store.create(user_id=user_id)
    barrier = threading.Barrier(N, timeout=30)

    def racing(data: dict[str, Any]) -> None:
        seen = data.get("n", 0)
        barrier.wait()  # all 50 have read n == 0
        data["n"] = seen + 1

    run_concurrently(lambda: store.update(sid, racing))
    assert store.read(sid)["n"] == 1  # 49 updates lost


def failing_update(data: dict[str, Any]) -> None:
    data["aws_region"] = "eu-west-1"
    data["aws_credentials"] = {"key": "AKIA..."}
    raise RuntimeError("request failed half-way")


@pytest.mark.parametrize("thread_safe", [True, False])
def test_an_atomic_update_that_fails_writes_nothing(
    sessions: sessionmaker[Session], user_id: int, thread_safe: bool
) -> None:
    store = store_with(sessions, thread_safe_sessions=thread_safe, atomic_session_updates=True)
    sid = store.create(user_id=user_id, data={"csrf_token": "t"})
    with pytest.raises(RuntimeError):
        store.update(sid, failing_update)
    assert store.read(sid) == {"csrf_token": "t"}


@pytest.mark.parametrize("thread_safe", [True, False])
def test_a_legacy_update_that_fails_leaves_a_half_written_session(
    sessions: sessionmaker[Session], user_id: int, thread_safe: bool
) -> None:
    """Documents the off state: fields are written one by one as they are set."""
    store = store_with(sessions, thread_safe_sessions=thread_safe, atomic_session_updates=False)
    sid = store.create(user_id=user_id, data={"csrf_token": "t"})
    with pytest.raises(RuntimeError):
        store.update(sid, failing_update)
    assert store.read(sid) == {
        "csrf_token": "t",
        "aws_region": "eu-west-1",
        "aws_credentials": {"key": "AKIA..."},
    }


@pytest.mark.parametrize("atomic", [True, False])
@pytest.mark.parametrize("thread_safe", [True, False])
def test_update_and_delete_keys_in_every_mode(
    sessions: sessionmaker[Session], user_id: int, atomic: bool, thread_safe: bool
) -> None:
    store = store_with(sessions, thread_safe_sessions=thread_safe, atomic_session_updates=atomic)
    sid = store.create(user_id=user_id, data={"a": 1, "b": 2})

    def change(data: dict[str, Any]) -> None:
        data.pop("a")
        data.update(c=3)

    result = store.update(sid, change)
    assert result == store.read(sid) == {"b": 2, "c": 3}


def test_an_ended_session_cannot_be_read_or_updated(
    sessions: sessionmaker[Session], user_id: int
) -> None:
    store = store_with(sessions, thread_safe_sessions=True, atomic_session_updates=True)
    sid = store.create(user_id=user_id)
    assert store.delete(sid)
    assert store.load(sid) is None
    with pytest.raises(SessionNotFound):
        store.read(sid)
    with pytest.raises(SessionNotFound):
        store.update(sid, increment)


def test_idle_and_absolute_timeouts(sessions: sessionmaker[Session], user_id: int) -> None:
    flags = Flags(thread_safe_sessions=True, atomic_session_updates=True)
    idle = SessionStore(sessions, idle_timeout=0.4, absolute_timeout=60, flag=flags)
    sid = idle.create(user_id=user_id)
    for _ in range(4):  # activity keeps it alive past the idle timeout
        time.sleep(0.15)
        assert idle.load(sid) is not None
    time.sleep(0.6)
    assert idle.load(sid) is None
    absolute = SessionStore(sessions, idle_timeout=60, absolute_timeout=0.5, flag=flags)
    sid = absolute.create(user_id=user_id)
    time.sleep(0.3)
    assert absolute.load(sid) is not None
    time.sleep(0.3)
    assert absolute.load(sid) is None  # however active it was


def test_the_database_holds_only_a_hash_of_the_session_id(
    sessions: sessionmaker[Session], user_id: int
) -> None:
    from sqlalchemy import select

    from backend.security.models import WebSession

    store = store_with(sessions, thread_safe_sessions=True, atomic_session_updates=True)
    sid = store.create(user_id=user_id)
    with sessions() as s:
        stored = s.scalars(select(WebSession.id_hash)).all()
    assert sid not in stored and len(stored) == 1
