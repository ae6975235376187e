"""verify_chain under live traffic: it reads one snapshot, so changes committed while it runs
are never reported as tampering (on SQLite WAL and on PostgreSQL alike)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, event
from sqlalchemy.orm import Session, sessionmaker

from backend.core.config import Settings
from backend.db.init_db import init_db
from backend.db.session import engine_for, session_factory
from backend.flags import FlagRuntime
from backend.flags.audit import ChainReport, verify_chain
from backend.security.audit_keys import anchor_sessions
from tests.postgres import scratch_database

CSRF = "csrf_tokens_enabled"
XSS = "xss_protection_enabled"


@pytest.fixture(params=["sqlite", "postgresql"])
def store(
    request: pytest.FixtureRequest,
    make_settings: Callable[..., Settings],
    make_runtime: Callable[..., FlagRuntime],
) -> Iterator[tuple[Engine, sessionmaker[Session], FlagRuntime]]:
    """An initialised, anchored flag store on a SQLite file or a scratch PostgreSQL database."""
    with scratch_database("pcm_verify") if request.param == "postgresql" else _no_db() as db:
        settings = make_settings(database_url=db[1] if db else None)  # as the param says
        init_db(settings)
        engine = engine_for(settings)
        try:
            sessions = session_factory(engine)
            anchor_sessions(sessions, settings)
            runtime = make_runtime(sessions=sessions)
            runtime.refresh(force=True)
            yield engine, sessions, runtime
        finally:
            engine.dispose()


class _no_db:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def verify(sessions: sessionmaker[Session]) -> ChainReport:
    with sessions() as s:
        return verify_chain(s)


def test_verify__a_change_commits_between_its_reads__still_ok(
    store: tuple[Engine, sessionmaker[Session], FlagRuntime],
) -> None:
    # Given a chain of three events
    engine, sessions, runtime = store
    for enabled in (False, True, False):
        runtime.toggle(CSRF, enabled, actor="alice", method="api")
    fired = threading.Event()

    def commit_a_change(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        # Right after verify's first read of the events, another connection commits a change.
        if "FROM flag_audit_events" in statement and not fired.is_set():
            fired.set()
            worker = threading.Thread(
                target=runtime.rollback, args=([XSS],), kwargs={"actor": "bob", "method": "cli"}
            )
            worker.start()
            worker.join()

    # When verify runs while that change commits
    event.listen(engine, "after_cursor_execute", commit_a_change)
    try:
        report = verify(sessions)
    finally:
        event.remove(engine, "after_cursor_execute", commit_a_change)
    # Then it checked the state before the change, and found nothing wrong
    assert fired.is_set()
    assert (report.ok, report.events, report.problems) == (True, 3, [])
    assert verify(sessions).events == 4


def test_verify__many_times_while_two_clients_toggle__always_ok(
    store: tuple[Engine, sessionmaker[Session], FlagRuntime],
) -> None:
    # Given two clients toggling as fast as they can
    _, sessions, runtime = store
    stop = threading.Event()
    errors: list[BaseException] = []

    def toggle(name: str) -> None:
        try:
            i = 0
            while not stop.is_set():
                runtime.toggle(name, i % 2 == 0, actor=f"client-{name}", method="api")
                i += 1
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    clients = [threading.Thread(target=toggle, args=(n,)) for n in (CSRF, XSS)]
    for c in clients:
        c.start()
    # When verify runs at least 40 times meanwhile, and on until the chain has grown under it
    # (a busy machine may start the clients late: wait for them rather than time them)
    try:
        deadline = time.monotonic() + 120
        while verify(sessions).events < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        reports = [verify(sessions) for _ in range(40)]
        while reports[-1].events < reports[0].events + 10 and time.monotonic() < deadline:
            reports.append(verify(sessions))
    finally:
        stop.set()
        for c in clients:
            c.join()
    # Then every verify says ok, and the chain did grow under it
    assert errors == []
    assert [r.problems for r in reports if not r.ok] == []
    assert reports[-1].events > reports[0].events
    assert verify(sessions).ok
