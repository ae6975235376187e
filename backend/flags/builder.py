"""How one process serves stored flags: rollback mode over environment overrides over the
journal over the store, and which restart-bound flags wait for a restart."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from types import MappingProxyType

from backend.flags.errors import ConfigurationError
from backend.flags.journal import JournalEntry
from backend.flags.last_known import FlagRecord
from backend.flags.snapshot import FlagState, Snapshot


class SnapshotBuilder:
    """Turns stored flag rows into this process's FlagStates and snapshots."""

    def __init__(
        self,
        *,
        rollback_mode: bool,
        overrides: Mapping[str, bool],
        boot_values: Mapping[str, bool] | None = None,
    ) -> None:
        self.rollback_mode = rollback_mode
        self.overrides = dict(overrides)
        # The values restart-bound flags had when this process first served them, unless the
        # process says what it runs with (postgresql_support: the database it runs on).
        self.boot_values: dict[str, bool] = dict(boot_values or {})

    def state(self, row: FlagRecord, entries: list[JournalEntry]) -> FlagState:
        """How this process serves one stored flag (rollback mode, overrides, the journal)."""
        stored, stored_source = row.enabled, "stored"
        updated_at, updated_by = row.updated_at, row.updated_by
        covering = None
        if entries:
            # A change stored after an entry was acknowledged supersedes it (the replay leaves
            # that flag alone too); before, journaled changes win over what the store holds.
            written = datetime.fromisoformat(row.updated_at)
            covering = [e for e in entries if e.covers(row.name) and e.at > written]
        if covering:
            # Journaled changes only ever move a flag to its rollback value.
            stored, stored_source = row.rollback_value, "journal"
            updated_at, updated_by = covering[-1].at.isoformat(), covering[-1].actor
        if self.rollback_mode:
            value, source = row.rollback_value, "rollback_mode"
        elif row.name in self.overrides:
            value, source = self.overrides[row.name], "env"
        else:
            value, source = stored, stored_source
        if row.requires_restart:
            boot = self.boot_values.setdefault(row.name, value)
            pending = boot != value
        else:
            pending = False
        return FlagState(
            name=row.name,
            enabled=value,
            stored_enabled=stored,
            source=source,
            rollback_value=row.rollback_value,
            requires_restart=row.requires_restart,
            pending_restart=pending,
            description=row.description,
            phase=row.phase,
            risk=row.risk,
            updated_at=updated_at,
            updated_by=updated_by,
        )

    def build(
        self, version: int, rows: list[FlagRecord], entries: list[JournalEntry] | None = None
    ) -> Snapshot:
        entries = entries or []
        return Snapshot(
            version=version,
            rollback_mode=self.rollback_mode,
            flags=MappingProxyType({row.name: self.state(row, entries) for row in rows}),
            journaled=tuple(e.id for e in entries),
        )

    def extend(self, base: Snapshot, version: int, rows: list[FlagRecord]) -> Snapshot:
        """`base` with the flags written since its version replaced: the cost of a refresh
        follows the size of the change, not the number of flags."""
        states = dict(base.flags)
        for row in rows:
            states[row.name] = self.state(row, [])
        return Snapshot(
            version=version, rollback_mode=self.rollback_mode, flags=MappingProxyType(states)
        )

    def check_overrides(self, names: set[str]) -> None:
        unknown = sorted(set(self.overrides) - names)
        if unknown:
            shown = ", ".join(f"FEATURE_FLAG_{n.upper()}" for n in unknown)
            raise ConfigurationError(
                f"{shown} names no feature flag; known flags: {', '.join(sorted(names))}"
            )
