"""Incremental refresh: a process loads only the flags written since the snapshot it serves,
and what it then serves is exactly what a full reload would serve."""

from __future__ import annotations

import random
import time
from collections.abc import Callable

from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from backend.core.config import Settings
from backend.db.base import utcnow
from backend.flags import FlagRuntime, current, is_enabled, last_known, service, snapshot
from backend.flags.models import FlagRow
from backend.flags.registry import FlagDefinition, Risk
from backend.flags.snapshot import FlagState

MakeRuntime = Callable[..., FlagRuntime]
CSRF = "csrf_tokens_enabled"


def served() -> dict[str, FlagState]:
    return dict(current().flags)


def reloaded(rt: FlagRuntime) -> dict[str, FlagState]:
    """What a full reload serves; the incremental snapshot is put back afterwards."""
    mine = current()
    try:
        return dict(rt.refresh(force=True).flags)
    finally:
        snapshot.publish(mine)


def test_many_changes_elsewhere_give_the_snapshot_a_full_reload_gives(
    runtime: FlagRuntime, sessions: sessionmaker[Session]
) -> None:
    rng = random.Random(7)
    with sessions.begin() as s:
        for i in range(40):
            service.create_flag(
                s, FlagDefinition(f"extra_{i:02d}", "extra", 3, Risk.LOW, True), actor="t"
            )
    runtime.refresh()
    assert len(current().flags) == 49  # new flags arrive through the incremental path too
    names = sorted(current().flags)
    for step in range(25):
        # Another worker's changes: toggles, partial and full rollbacks, mixed.
        with sessions.begin() as s:
            kind = rng.choice(["toggle", "toggle", "rollback", "emergency"])
            if kind == "toggle":
                service.set_flag(
                    s,
                    name=rng.choice(names),
                    enabled=rng.random() < 0.5,
                    actor=f"w{step}",
                    method="api",
                )
            elif kind == "rollback":
                service.rollback_flags(
                    s, names=rng.sample(names, 5), actor=f"w{step}", method="feature_flag"
                )
            else:
                service.rollback_flags(s, names=None, actor=f"w{step}", method="emergency")
        if rng.random() < 0.5:
            continue  # sometimes two changes land between refreshes
        version = runtime.refresh().version
        assert served() == reloaded(runtime), f"step {step} ({kind}) diverged"
        assert current().version == version


def test_a_refresh_reads_only_the_flags_written_since_the_served_version(
    runtime: FlagRuntime, sessions: sessionmaker[Session]
) -> None:
    # A row edited behind the store's back (no version) is not reloaded by an incremental
    # refresh, while the flag that the next change writes is: the proof that a refresh after
    # a change reads only what changed. A forced refresh reloads everything.
    with sessions.begin() as s:
        s.execute(update(FlagRow).where(FlagRow.name == "xss_protection_enabled").values(phase=9))
    runtime.toggle(CSRF, False, actor="a", method="api")
    assert current().flags[CSRF].enabled is False
    assert current().flags["xss_protection_enabled"].phase != 9
    runtime.refresh(force=True)
    assert current().flags["xss_protection_enabled"].phase == 9


def test_a_store_whose_version_went_back_is_reloaded_whole(
    runtime: FlagRuntime, sessions: sessionmaker[Session]
) -> None:
    # Another database behind the same URL (a restore): the version is lower than served.
    runtime.toggle(CSRF, False, actor="a", method="api")
    served_version = current().version
    with sessions.begin() as s:
        s.execute(update(FlagRow).where(FlagRow.name == CSRF).values(enabled=True, version=0))
        store = service.lock_store(s)
        store.version = 1
    runtime.refresh()
    assert current().version == 1 < served_version
    assert is_enabled(CSRF) is True


def test_the_poller_writes_the_state_file_off_the_request_path(
    make_runtime: MakeRuntime, settings: Settings
) -> None:
    rt = make_runtime(poll_interval=0.01)
    rt.refresh(force=True)
    rt.start_polling()
    rt.rollback(None, actor="a", method="emergency")
    version = current().version
    deadline = time.monotonic() + 3
    while last_known.saved_version(settings.state_file) != version:
        assert time.monotonic() < deadline, "the state file never reached the new version"
        time.sleep(0.01)
    loaded = last_known.load(settings.state_file)
    assert loaded is not None
    assert {r.name: r.enabled for r in loaded[1]} == {
        name: f.stored_enabled for name, f in current().flags.items()
    }


def test_a_state_file_of_the_served_version_is_not_rewritten(
    runtime: FlagRuntime, settings: Settings
) -> None:
    # Four workers serve the same version: the first one to save it writes the file.
    runtime.toggle(CSRF, False, actor="a", method="api")
    before = settings.state_file.stat().st_mtime_ns
    time.sleep(0.02)
    other = FlagRuntime(runtime.sessions, state_file=settings.state_file)
    other.refresh(force=True)
    assert settings.state_file.stat().st_mtime_ns == before
    assert last_known.saved_version(settings.state_file) == current().version


def test_saved_version_reads_the_head_of_the_file(settings: Settings) -> None:
    settings.state_file.parent.mkdir(parents=True, exist_ok=True)
    row = last_known.FlagRecord(CSRF, True, False, False, "d", 1, "low", utcnow().isoformat(), "t")
    assert last_known.saved_version(settings.state_file) is None  # no file yet
    assert last_known.save(settings.state_file, 1234, [row])
    assert last_known.saved_version(settings.state_file) == 1234
    settings.state_file.write_text("not json")
    assert last_known.saved_version(settings.state_file) is None


def test_a_rollback_serves_what_it_wrote_as_a_reload_would(
    runtime: FlagRuntime, sessions: sessionmaker[Session]
) -> None:
    # The writer publishes its own rollback without reading the store back.
    runtime.rollback(["xss_protection_enabled"], actor="alice", method="feature_flag")
    assert served() == reloaded(runtime)
    result = runtime.rollback(None, actor="bob", method="emergency", reason="incident")
    assert result.version == current().version
    assert served() == reloaded(runtime)
    assert current().flags[CSRF].updated_by == "bob"


def test_a_rollback_after_an_unseen_change_loads_that_change_too(
    runtime: FlagRuntime, sessions: sessionmaker[Session]
) -> None:
    # Another worker enabled a flag this process has not loaded yet; the rollback then moves
    # the store two versions on, and both must be served.
    with sessions.begin() as s:
        service.set_flag(s, name="postgresql_support", enabled=True, actor="other", method="api")
    assert current().flags["postgresql_support"].stored_enabled is False
    runtime.rollback(["xss_protection_enabled"], actor="alice", method="feature_flag")
    assert current().flags["postgresql_support"].stored_enabled is True
    assert served() == reloaded(runtime)


def test_stored_timestamps_are_served_as_iso_8601_utc_with_microseconds() -> None:
    from datetime import UTC, datetime, timedelta, timezone

    iso = last_known.iso_utc
    assert iso("2026-11-26 13:58:01.198570") == "2026-11-26T13:58:01.198570+00:00"  # SQLite
    assert iso("2026-11-26 13:58:01") == "2026-11-26T13:58:01.000000+00:00"
    assert iso(datetime(2026, 11, 26, 13, 58, 1, tzinfo=UTC)) == "2026-11-26T13:58:01.000000+00:00"
    cet = timezone(timedelta(hours=1))
    assert (
        iso(datetime(2026, 11, 26, 14, 58, 1, 5, tzinfo=cet)) == "2026-11-26T13:58:01.000005+00:00"
    )
    assert (
        iso(datetime(2026, 11, 26, 13, 58, 1)) == "2026-11-26T13:58:01.000000+00:00"
    )  # naive: UTC
