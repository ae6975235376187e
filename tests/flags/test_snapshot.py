"""The read path: an immutable snapshot published atomically, looked up without I/O."""

from __future__ import annotations

import dataclasses
import sys
import threading
from types import MappingProxyType

import pytest

from backend.flags import FlagNotFound, FlagState, Snapshot, current, is_enabled, snapshot


def state(name: str, enabled: bool) -> FlagState:
    return FlagState(
        name=name,
        enabled=enabled,
        stored_enabled=enabled,
        source="stored",
        rollback_value=False,
        requires_restart=False,
        pending_restart=False,
        description="",
        phase=1,
        risk="low",
        updated_at="2026-01-01T00:00:00+00:00",
        updated_by="test",
    )


def snap(version: int, **values: bool) -> Snapshot:
    return Snapshot(
        version=version,
        rollback_mode=False,
        flags=MappingProxyType({n: state(n, v) for n, v in values.items()}),
    )


def test_empty_snapshot_before_anything_is_published() -> None:
    assert current().version == -1
    assert dict(current().flags) == {}
    with pytest.raises(FlagNotFound):
        is_enabled("csrf_tokens_enabled")


def test_publish_serves_the_effective_values() -> None:
    snapshot.publish(snap(7, a=True, b=False))
    assert current().version == 7
    assert is_enabled("a") is True
    assert is_enabled("b") is False


def test_unknown_name_raises_flag_not_found_with_the_name() -> None:
    snapshot.publish(snap(1, a=True))
    with pytest.raises(FlagNotFound, match="unknown feature flag: 'nope'") as info:
        is_enabled("nope")
    assert info.value.name == "nope"
    # A KeyError too, so `except KeyError` callers keep working.
    assert isinstance(info.value, KeyError)


def test_long_unknown_name_message_is_shortened() -> None:
    name = "x" * 5000
    with pytest.raises(FlagNotFound) as info:
        is_enabled(name)
    assert info.value.name == name
    assert len(str(info.value)) < 120


def test_republishing_replaces_the_values_and_leaves_old_snapshots_intact() -> None:
    old = snap(1, a=True)
    snapshot.publish(old)
    snapshot.publish(snap(2, a=False))
    assert is_enabled("a") is False
    assert current().version == 2
    assert old.flags["a"].enabled is True


def test_reset_forgets_the_snapshot() -> None:
    snapshot.publish(snap(3, a=True))
    snapshot.reset()
    assert current().version == -1
    with pytest.raises(FlagNotFound):
        is_enabled("a")


def test_snapshot_and_states_are_immutable() -> None:
    s = snap(1, a=True)
    with pytest.raises(TypeError):
        s.flags["a"] = state("a", False)  # type: ignore[index]
    with pytest.raises(AttributeError):  # a NamedTuple's fields are read-only
        s.flags["a"].enabled = False  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.version = 2  # type: ignore[misc]


def test_age_grows_from_load_time() -> None:
    s = snap(1, a=True)
    assert 0 <= s.age_seconds < 5


def test_readers_never_see_a_half_published_snapshot() -> None:
    # Every published snapshot has all flags equal; a reader must never see them differ.
    names = [f"f{i}" for i in range(50)]
    on = snap(1, **dict.fromkeys(names, True))
    off = snap(2, **dict.fromkeys(names, False))
    stop = threading.Event()
    torn: list[str] = []

    def writer() -> None:
        while not stop.is_set():
            snapshot.publish(on)
            snapshot.publish(off)

    def reader() -> None:
        for _ in range(2000):
            s = current()
            values = {s.flags[n].enabled for n in names}
            if len(values) != 1:
                torn.append(f"version {s.version}")
            try:  # consecutive lookups may straddle a publish, but a name never goes missing
                for n in names[:5]:
                    is_enabled(n)
            except FlagNotFound as exc:
                torn.append(str(exc))

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible: races show up
    w = threading.Thread(target=writer)
    w.start()
    try:
        readers = [threading.Thread(target=reader) for _ in range(4)]
        for r in readers:
            r.start()
        for r in readers:
            r.join()
    finally:
        stop.set()
        w.join()
        sys.setswitchinterval(interval)
    assert torn == []
