"""One process's control plane: refresh, precedence, changes, propagation, last-known state."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import event as sa_event
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from backend.core.config import Settings
from backend.db.session import engine_for, make_engine, session_factory
from backend.flags import (
    DEFAULT_FLAGS,
    ConfigurationError,
    FlagNotFound,
    FlagRuntime,
    FlagStoreUnavailable,
    RollbackModeActive,
    current,
    is_enabled,
    last_known,
    service,
    snapshot,
)
from backend.flags.audit import verify_chain
from backend.flags.models import AuditEvent, FlagRow, FlagStoreRow

CSRF = "csrf_tokens_enabled"
PYDANTIC = "pydantic_v2_schemas"
DEFAULTS = {d.name: d.default for d in DEFAULT_FLAGS}
ROLLBACK_VALUES = {d.name: d.rollback_value for d in DEFAULT_FLAGS}
MakeRuntime = Callable[..., FlagRuntime]


def stored(sessions: sessionmaker[Session]) -> dict[str, bool]:
    with sessions() as s:
        return {r.name: r.enabled for r in s.scalars(select(FlagRow))}


def store_version(sessions: sessionmaker[Session]) -> int:
    with sessions() as s:
        v = s.scalar(select(FlagStoreRow.version))
        assert v is not None
        return v


def audit_count(sessions: sessionmaker[Session]) -> int:
    with sessions() as s:
        return s.scalar(select(func.count()).select_from(AuditEvent)) or 0


def wait_for(condition: Callable[[], bool], timeout: float = 3.0) -> float:
    """Seconds until `condition` held; fails the test after `timeout`."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            pytest.fail(f"condition not met within {timeout} s")
        time.sleep(0.005)
    return time.monotonic() - started


def effective() -> dict[str, bool]:
    return {n: f.enabled for n, f in current().flags.items()}


# -- reading ------------------------------------------------------------------------------
def test_refresh_publishes_every_flag_at_the_store_version(
    runtime: FlagRuntime, sessions: sessionmaker[Session]
) -> None:
    assert effective() == DEFAULTS
    assert current().version == store_version(sessions)
    assert {f.source for f in current().flags.values()} == {"stored"}
    assert is_enabled(CSRF) is True


def test_refresh_without_a_change_keeps_the_same_snapshot(runtime: FlagRuntime) -> None:
    first = current()
    assert runtime.refresh() is first
    assert runtime.refresh(force=True) is not first


def test_unknown_names_raise_flag_not_found(runtime: FlagRuntime) -> None:
    with pytest.raises(FlagNotFound):
        is_enabled("nope")
    with pytest.raises(FlagNotFound):
        runtime.get("x" * 5000)


def test_an_uninitialised_store_is_reported_as_unavailable(empty_database_url: str) -> None:
    engine = make_engine(empty_database_url)
    try:
        rt = FlagRuntime(session_factory(engine))
        with pytest.raises(FlagStoreUnavailable):
            rt.refresh()
    finally:
        engine.dispose()


# -- changing -----------------------------------------------------------------------------
def test_toggle_changes_the_effective_value_version_and_audit(
    runtime: FlagRuntime, sessions: sessionmaker[Session]
) -> None:
    before = current().version
    result = runtime.toggle(CSRF, False, actor="alice", method="api", reason="INC-1")
    assert (result.old, result.new) == (True, False)
    assert result.version == before + 1 == current().version
    assert result.flag.enabled is False
    assert is_enabled(CSRF) is False
    assert stored(sessions)[CSRF] is False
    with sessions() as s:
        event = s.scalars(select(AuditEvent)).one()
    assert (event.actor, event.method, event.reason, event.new_value) == (
        "alice",
        "api",
        "INC-1",
        False,
    )


def test_toggle_of_an_unknown_flag_changes_nothing(
    runtime: FlagRuntime, sessions: sessionmaker[Session]
) -> None:
    before = current().version
    with pytest.raises(FlagNotFound):
        runtime.toggle("nope", False, actor="a", method="api")
    assert store_version(sessions) == before
    assert audit_count(sessions) == 0


def test_emergency_rollback_sets_every_flag_to_its_rollback_value(
    runtime: FlagRuntime, sessions: sessionmaker[Session]
) -> None:
    before = current().version
    result = runtime.rollback(None, actor="ops", method="emergency", reason="INC-2")
    assert effective() == ROLLBACK_VALUES
    assert stored(sessions) == ROLLBACK_VALUES
    assert result.version == before + 1 == current().version  # one transaction
    assert result.verification == "success"
    changed = {d.name for d in DEFAULT_FLAGS if d.default != d.rollback_value}
    assert {c["flag"] for c in result.changed} == changed
    assert set(result.unchanged) == set(DEFAULTS) - changed
    assert result.requires_restart == [PYDANTIC]
    assert result.duration_ms >= 0
    again = runtime.rollback(None, actor="ops", method="emergency")
    assert again.changed == []
    assert again.record_id != result.record_id


def test_rollback_of_one_flag(runtime: FlagRuntime) -> None:
    result = runtime.rollback([CSRF], actor="ops", method="feature_flag")
    assert result.changed == [{"flag": CSRF, "from": True, "to": False}]
    assert is_enabled(CSRF) is False
    assert is_enabled("xss_protection_enabled") is True
    with pytest.raises(FlagNotFound):
        runtime.rollback(["nope"], actor="ops", method="feature_flag")


# -- precedence ---------------------------------------------------------------------------
def test_rollback_mode_serves_rollback_values_and_leaves_the_store_alone(
    make_runtime: MakeRuntime, sessions: sessionmaker[Session]
) -> None:
    rt = make_runtime(rollback_mode=True)
    rt.refresh(force=True)
    assert effective() == ROLLBACK_VALUES
    assert {f.source for f in current().flags.values()} == {"rollback_mode"}
    assert current().flags[CSRF].stored_enabled is True
    assert current().rollback_mode is True
    assert stored(sessions) == DEFAULTS


def test_rollback_mode_refuses_enabling_and_allows_disabling(
    make_runtime: MakeRuntime, sessions: sessionmaker[Session]
) -> None:
    rt = make_runtime(rollback_mode=True)
    rt.refresh(force=True)
    rt.toggle(CSRF, False, actor="a", method="api")
    with pytest.raises(RollbackModeActive, match="FEATURE_FLAG_ROLLBACK_MODE_ENABLED"):
        rt.toggle(CSRF, True, actor="a", method="api")
    assert stored(sessions)[CSRF] is False
    assert audit_count(sessions) == 1


def test_env_override_wins_over_the_store(
    make_runtime: MakeRuntime, sessions: sessionmaker[Session]
) -> None:
    rt = make_runtime(overrides={CSRF: False, "postgresql_support": True})
    rt.refresh(force=True)
    assert current().flags[CSRF].source == "env"
    assert is_enabled(CSRF) is False
    assert is_enabled("postgresql_support") is True
    assert current().flags["xss_protection_enabled"].source == "stored"
    rt.toggle(CSRF, True, actor="a", method="api")  # stored changes, the override still wins
    assert is_enabled(CSRF) is False
    assert current().flags[CSRF].stored_enabled is True


def test_rollback_mode_wins_over_env_override(make_runtime: MakeRuntime) -> None:
    rt = make_runtime(rollback_mode=True, overrides={"postgresql_support": True})
    rt.refresh(force=True)
    assert is_enabled("postgresql_support") is False
    assert current().flags["postgresql_support"].source == "rollback_mode"


def test_override_of_an_unknown_flag_is_a_configuration_error(make_runtime: MakeRuntime) -> None:
    rt = make_runtime(overrides={"no_such_flag": True})
    with pytest.raises(ConfigurationError, match="FEATURE_FLAG_NO_SUCH_FLAG"):
        rt.refresh(force=True)
    assert current().version == -1  # nothing half-configured is served


def test_restart_flag_shows_pending_restart_until_back_at_its_boot_value(
    runtime: FlagRuntime,
) -> None:
    assert not any(f.pending_restart for f in current().flags.values())
    runtime.toggle(PYDANTIC, False, actor="a", method="api")
    assert current().flags[PYDANTIC].pending_restart is True
    assert runtime.health()["pending_restart"] == [PYDANTIC]
    runtime.toggle(CSRF, False, actor="a", method="api")
    assert current().flags[CSRF].pending_restart is False  # takes effect at once
    runtime.toggle(PYDANTIC, True, actor="a", method="api")
    assert current().flags[PYDANTIC].pending_restart is False
    assert runtime.health()["pending_restart"] == []


# -- concurrency and propagation -----------------------------------------------------------
def run_together(
    threads: int, per_thread: int, step: Callable[[int, int], None]
) -> list[BaseException]:
    """Run step(k, i) for i < per_thread in each of `threads` threads, started together;
    the exceptions they raised."""
    errors: list[BaseException] = []
    start = threading.Barrier(threads)

    def worker(k: int) -> None:
        try:
            start.wait()
            for i in range(per_thread):
                step(k, i)
        except BaseException as exc:
            errors.append(exc)

    pool = [threading.Thread(target=worker, args=(k,)) for k in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return errors


def test_concurrent_toggles_of_one_flag_are_all_audited_in_order(
    runtime: FlagRuntime, sessions: sessionmaker[Session]
) -> None:
    threads, per_thread = 8, 25
    before = audit_count(sessions)
    changes: list[bool] = []  # list.append is atomic: the threads share it safely

    def toggles(k: int, i: int) -> None:
        result = runtime.toggle(CSRF, (k + i) % 2 == 0, actor=f"thread-{k}", method="api")
        changes.append(result.changed)

    assert run_together(threads, per_thread, toggles) == []
    # Every answer that said "changed" is one audit event; one that found the flag at that
    # value already recorded nothing.
    assert len(changes) == threads * per_thread and any(changes)
    assert audit_count(sessions) == before + sum(changes)
    with sessions() as s:
        chain = verify_chain(s)
        evs = list(
            s.scalars(
                select(AuditEvent).where(AuditEvent.flag_name == CSRF).order_by(AuditEvent.id)
            )
        )
    assert chain.ok, chain.problems
    # Serialized: each write saw the previous one (no lost update), one version each.
    for prev, event in itertools.pairwise(evs):
        assert event.old_value == prev.new_value
        assert event.version == prev.version + 1
    assert stored(sessions)[CSRF] == evs[-1].new_value
    assert is_enabled(CSRF) == evs[-1].new_value
    assert current().version == store_version(sessions)


def test_a_refresh_picks_up_a_change_another_worker_made(
    make_runtime: MakeRuntime, settings: Settings
) -> None:
    # Two workers on one SQLite file, each with its own engine. The snapshot is per process,
    # so B's view is put back after A's toggle: that is exactly what B's process would hold.
    engine_a = engine_for(settings)
    try:
        a = make_runtime(sessions=session_factory(engine_a))
        b = make_runtime()
        b_view = b.refresh(force=True)
        a.toggle(CSRF, False, actor="worker-a", method="api")
        snapshot.publish(b_view)
        assert is_enabled(CSRF) is True
        seen = b.refresh()  # not forced: B must notice the version moved
        assert seen.version == b_view.version + 1
        assert is_enabled(CSRF) is False
    finally:
        engine_a.dispose()


def test_polling_publishes_a_change_committed_elsewhere(
    make_runtime: MakeRuntime, settings: Settings
) -> None:
    b = make_runtime(poll_interval=0.01)
    b.refresh(force=True)
    b.start_polling()
    engine_a = engine_for(settings)
    try:
        # Worker A commits through the same use case, on its own connection, and publishes
        # nothing in this process: only B's poller can bring the change here.
        with session_factory(engine_a).begin() as s:
            service.set_flag(s, name=CSRF, enabled=False, actor="worker-a", method="api")
    finally:
        engine_a.dispose()
    waited = wait_for(lambda: CSRF in current().flags and not is_enabled(CSRF))
    assert waited < 1.0
    assert b.health()["status"] == "healthy"


WORKER_A = """
import sys
from backend.db.session import make_engine, session_factory
from backend.flags import FlagRuntime
engine = make_engine(sys.argv[1])
rt = FlagRuntime(session_factory(engine))
rt.refresh(force=True)
rt.start_polling()
rt.toggle("csrf_tokens_enabled", False, actor="worker-a", method="api")
rt.stop_polling()
engine.dispose()
"""


def test_a_change_in_another_process_reaches_this_one(
    make_runtime: MakeRuntime, settings: Settings
) -> None:
    b = make_runtime(poll_interval=0.01)
    b.refresh(force=True)
    b.start_polling()
    subprocess.run(
        [sys.executable, "-c", WORKER_A, settings.effective_database_url],
        check=True,
        timeout=30,
    )
    waited = wait_for(lambda: not is_enabled(CSRF))
    assert waited < 1.0
    assert current().flags[CSRF].updated_by == "worker-a"


# -- health ---------------------------------------------------------------------------------
def test_health_is_healthy_after_a_refresh(runtime: FlagRuntime) -> None:
    h = runtime.health()
    assert h["status"] == "healthy"
    assert h["store_reachable"] is True
    assert h["version"] == current().version
    assert h["flags"] == len(DEFAULTS)
    assert h["stale"] is False


def test_health_turns_unhealthy_when_the_snapshot_is_stale(make_runtime: MakeRuntime) -> None:
    rt = make_runtime(stale_after=0.05)
    rt.refresh(force=True)
    time.sleep(0.1)
    assert rt.health()["stale"] is True
    assert rt.health()["status"] == "unhealthy"


def test_polling_keeps_a_quiet_snapshot_fresh(make_runtime: MakeRuntime) -> None:
    rt = make_runtime(stale_after=0.3, poll_interval=0.01)
    rt.refresh(force=True)
    rt.start_polling()
    time.sleep(0.6)  # twice stale_after: only the poller's syncs keep it healthy
    assert rt.health()["status"] == "healthy"


def test_health_without_a_snapshot_is_unhealthy(make_runtime: MakeRuntime) -> None:
    assert make_runtime().health()["status"] == "unhealthy"


# -- last-known state -----------------------------------------------------------------------
@pytest.fixture
def unreachable(unreachable_database_url: str) -> Iterator[sessionmaker[Session]]:
    """Sessions on a database that cannot be reached."""
    engine = make_engine(unreachable_database_url)
    yield session_factory(engine)
    engine.dispose()


def test_refresh_writes_the_last_known_state_file(runtime: FlagRuntime, settings: Settings) -> None:
    runtime.toggle(CSRF, False, actor="a", method="api")
    data = json.loads(settings.state_file.read_text())
    assert data["version"] == current().version
    assert set(data["flags"]) == set(DEFAULTS)
    assert data["flags"][CSRF]["stored_enabled"] is False


def test_an_unreachable_store_serves_the_last_known_state(
    runtime: FlagRuntime,
    make_runtime: MakeRuntime,
    settings: Settings,
    unreachable: sessionmaker[Session],
) -> None:
    runtime.toggle(CSRF, False, actor="a", method="api")
    served = effective()
    version = current().version
    snapshot.reset()  # a fresh process: nothing served yet

    down = make_runtime(sessions=unreachable, state_file=settings.state_file)
    with pytest.raises(FlagStoreUnavailable, match="unreachable"):
        down.refresh()
    assert current().from_last_known_state is True
    assert current().version == version
    assert effective() == served
    assert is_enabled(CSRF) is False
    h = down.health()
    assert (h["status"], h["store_reachable"], h["from_last_known_state"]) == (
        "unhealthy",
        False,
        True,
    )


def test_last_known_state_honours_rollback_mode(
    runtime: FlagRuntime,
    make_runtime: MakeRuntime,
    settings: Settings,
    unreachable: sessionmaker[Session],
) -> None:
    snapshot.reset()
    down = make_runtime(sessions=unreachable, state_file=settings.state_file, rollback_mode=True)
    with pytest.raises(FlagStoreUnavailable):
        down.refresh()
    assert effective() == ROLLBACK_VALUES


def test_the_store_coming_back_replaces_the_last_known_state(
    runtime: FlagRuntime,
    make_runtime: MakeRuntime,
    settings: Settings,
    unreachable: sessionmaker[Session],
) -> None:
    snapshot.reset()
    down = make_runtime(sessions=unreachable, state_file=settings.state_file)
    with pytest.raises(FlagStoreUnavailable):
        down.refresh()
    assert current().from_last_known_state is True
    runtime.refresh()  # not forced: a last-known snapshot is always replaced
    assert current().from_last_known_state is False


def test_an_unreachable_store_without_a_state_file_serves_nothing(
    make_runtime: MakeRuntime, unreachable: sessionmaker[Session], tmp_path: Path
) -> None:
    down = make_runtime(sessions=unreachable, state_file=tmp_path / "missing.json")
    with pytest.raises(FlagStoreUnavailable, match="no last-known state"):
        down.refresh()
    assert current().version == -1


def test_a_corrupt_state_file_is_not_served(
    make_runtime: MakeRuntime, unreachable: sessionmaker[Session], tmp_path: Path
) -> None:
    state = tmp_path / "state.json"
    state.write_text("{not json")
    down = make_runtime(sessions=unreachable, state_file=state)
    with pytest.raises(FlagStoreUnavailable):
        down.refresh()
    assert current().version == -1


# -- the answer to a toggle is the change it made ---------------------------------------------
def test_toggle__another_change_lands_before_the_read_back__answers_its_own_change(
    runtime: FlagRuntime, sessions: sessionmaker[Session], settings: Settings
) -> None:
    # Given another worker that stores the opposite value right after this toggle commits
    other = session_factory(engine_for(settings))
    interleaved: list[int] = []

    def other_worker(_session: Session) -> None:
        if not interleaved:
            interleaved.append(0)
            with other.begin() as s:
                interleaved[0] = service.set_flag(
                    s, name=CSRF, enabled=True, actor="other", method="api"
                ).version

    sa_event.listen(runtime.sessions, "after_commit", other_worker)
    try:
        # When this process disables the flag
        result = runtime.toggle(CSRF, False, actor="me", method="api")
    finally:
        sa_event.remove(runtime.sessions, "after_commit", other_worker)

    # Then it answers its own change at its own version, not the other worker's
    assert interleaved and interleaved[0] == result.version + 1
    assert (result.old, result.new) == (True, False)
    assert (result.flag.enabled, result.flag.stored_enabled) == (False, False)
    assert result.flag.updated_by == "me"
    assert is_enabled(CSRF) is True  # the snapshot serves the later change


def test_concurrent_toggles__each_answer__is_the_change_made_at_its_version(
    runtime: FlagRuntime, sessions: sessionmaker[Session]
) -> None:
    runtime.start_polling()
    threads, per_thread = 6, 30
    answers: list[tuple[int, bool, bool, str, bool, str]] = []

    def toggles(k: int, i: int) -> None:
        r = runtime.toggle(CSRF, (k + i) % 2 == 0, actor=f"t{k}", method="api")
        answers.append(
            (r.version, r.new, r.flag.stored_enabled, r.flag.updated_by, r.changed, f"t{k}")
        )

    assert run_together(threads, per_thread, toggles) == []
    with sessions() as s:
        audited = {
            e.version: (e.new_value, e.actor)
            for e in s.scalars(select(AuditEvent).where(AuditEvent.flag_name == CSRF))
        }

    def value_at(version: int) -> bool:
        """The flag's value at a store version: its last audited change at or before it
        (none: the value it was seeded with, on)."""
        earlier = [v for v in audited if v <= version]
        return audited[max(earlier)][0] if earlier else True

    assert any(changed for *_, changed, _ in answers)
    for version, sent, answered, by, changed, caller in answers:
        assert answered == sent
        if changed:  # the change this caller made, at its version
            assert audited[version] == (sent, caller) and by == caller
        else:  # found at that value: the flag had it at the version answered
            assert version not in audited or audited[version][1] != caller
            assert value_at(version) == sent


# -- the last-known state file keeps up ----------------------------------------------------------
def test_polling__a_stream_of_changes__keeps_the_state_file_close_to_the_store(
    make_runtime: MakeRuntime, settings: Settings
) -> None:
    # Given a poller and changes coming faster than a snapshot can settle
    rt = make_runtime(poll_interval=0.01)
    rt.refresh(force=True)
    rt.start_polling()
    start = current().version
    stop = threading.Event()

    def stream() -> None:
        value = False
        while not stop.is_set():
            rt.toggle(CSRF, value, actor="load", method="api")
            value = not value
            time.sleep(0.01)

    writer = threading.Thread(target=stream)
    writer.start()
    try:
        # Then the file follows the store while the stream goes on
        wait_for(lambda: (saved_version(settings) or 0) >= start + 10, timeout=30)
    finally:
        stop.set()
        writer.join()


def saved_version(settings: Settings) -> int | None:
    try:
        return int(json.loads(settings.state_file.read_text())["version"])
    except (OSError, ValueError):
        return None


def test_save_state__a_newer_file_from_another_worker__is_not_overwritten(
    runtime: FlagRuntime, settings: Settings
) -> None:
    # Given another worker saved a newer version a moment ago
    newer = current().version + 5
    last_known.save(settings.state_file, newer, last_known.records_of(current()))
    runtime.toggle(CSRF, False, actor="a", method="api")  # serves a version below that
    assert current().version < newer
    # When this (slower) worker saves
    runtime.offline.save_state()
    # Then the newer file stays
    assert saved_version(settings) == newer
