"""The immutable snapshot each process evaluates flags against, and the read path.

A snapshot is built once per store version and published by rebinding module globals,
which is atomic in CPython: readers never lock and never see a half-built snapshot.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import NamedTuple

from backend.flags.errors import FlagNotFound


class FlagState(NamedTuple):
    """One flag as the serving snapshot sees it (a NamedTuple: immutable, and built at less
    than half the cost of a frozen dataclass, a thousand times per thousand-flag change)."""

    name: str
    enabled: bool
    stored_enabled: bool
    source: (
        str  # "stored", "journal" (rolled back while the store was down), "env", "rollback_mode"
    )
    rollback_value: bool
    requires_restart: bool
    pending_restart: bool
    description: str
    phase: int
    risk: str
    updated_at: str
    updated_by: str

    def as_dict(self) -> dict[str, object]:
        """The flag as the API and the CLI show it (every value is plain)."""
        return self._asdict()


@dataclass(frozen=True, slots=True)
class Snapshot:
    version: int
    rollback_mode: bool
    flags: Mapping[str, FlagState]
    loaded_at: float = field(default_factory=time.monotonic)
    from_last_known_state: bool = False
    # Ids of journaled rollbacks (made while the store was down) this snapshot includes and
    # the store does not hold yet.
    journaled: tuple[str, ...] = ()

    @property
    def age_seconds(self) -> float:
        return time.monotonic() - self.loaded_at


EMPTY = Snapshot(version=-1, rollback_mode=False, flags=MappingProxyType({}))

_snapshot: Snapshot = EMPTY
_values: dict[str, bool] = {}


def is_enabled(name: str) -> bool:
    """Effective value of flag `name` in this process: a dict lookup, no I/O, no lock."""
    try:
        return _values[name]
    except KeyError:
        raise FlagNotFound(name) from None


def current() -> Snapshot:
    """The snapshot this process serves."""
    return _snapshot


def publish(snapshot: Snapshot) -> None:
    """Make `snapshot` the one this process serves; the values dict is never mutated after."""
    global _snapshot, _values
    values = {name: state.enabled for name, state in snapshot.flags.items()}
    _snapshot = snapshot
    _values = values


def reset() -> None:
    """Forget the served snapshot (tests and shutdown)."""
    publish(EMPTY)
