"""What the flag use cases return, and the `Feature flag …` log lines they write."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from backend.flags.snapshot import FlagState

log = logging.getLogger("pcm_ops_tools.flags")


@dataclass(frozen=True, slots=True)
class ToggleResult:
    flag: FlagState
    old: bool
    new: bool
    version: int  # the change's version; when nothing changed, the store's version
    journal_id: str | None = None  # set when journaled because the store was unreachable
    note: str | None = None  # when journaled: over which last-known state

    @property
    def changed(self) -> bool:
        return self.old != self.new

    @property
    def message(self) -> str:
        """What happened, in one sentence, for the API, the CLI and the console."""
        name, value = self.flag.name, fmt(self.new)
        if self.journal_id is not None:
            return f"{name} is now {value} (journaled as {self.journal_id})"
        if self.changed:
            return f"{name} is now {value}"
        if self.new == self.flag.rollback_value:
            return f"{name} is already at its rollback value ({value}): nothing changed"
        return f"{name} is already {value}: nothing changed"


@dataclass(frozen=True, slots=True)
class RollbackResult:
    record_id: int | None  # None when journaled: the record is made at replay
    version: int
    changed: list[dict[str, object]]
    unchanged: list[str]
    requires_restart: list[str]
    verification: str  # "success", "failed" or "journaled"
    duration_ms: float
    journal_id: str | None = None
    # When journaled: the last-known state version `changed` was worked out on, and what the
    # entry will do once replayed (the database may hold a newer state than that file).
    last_known_version: int | None = None
    note: str | None = None
    # True when no flag needed to change: a flag rollback then records nothing (record_id
    # None), an emergency rollback still leaves a record saying so.
    nothing_changed: bool = False
    message: str = ""

    def as_dict(self) -> dict[str, object]:
        """For the API and the CLI: shallow (dataclasses.asdict deep-copies every change, a
        few ms for a thousand flags)."""
        return {name: getattr(self, name) for name in self.__slots__}


def rollback_message(
    names: list[str] | None,
    changed: list[str],
    record_id: int | None,
    *,
    journal_id: str | None = None,
) -> str:
    """What a rollback did, in one sentence, for the API, the CLI and the console."""
    if journal_id is not None:
        what = "every flag" if names is None else ", ".join(sorted(set(names)))
        return f"rollback of {what} journaled as {journal_id}: applied when the database returns"
    if names is None:
        if changed:
            return f"{len(changed)} flag(s) set to their rollback value (record {record_id})"
        return (
            "every flag was already at its rollback value: nothing needed changing"
            f" (record {record_id})"
        )
    if changed:
        return f"{', '.join(changed)} set to its rollback value (record {record_id})"
    if len(set(names)) == 1:
        return f"{names[0]} is already at its rollback value: nothing changed, nothing recorded"
    return "the flags are already at their rollback values: nothing changed, nothing recorded"


def journaled_note(version: int, names: list[str] | None) -> str:
    """What a journaled change says about the state it was worked out on."""
    scope = "every flag (ALL)" if names is None else ", ".join(sorted(set(names)))
    return (
        f"journaled over last-known state version {version} (may be older than the database);"
        f" applies to {scope} when replayed"
    )


def fmt(value: bool) -> str:
    return "enabled" if value else "disabled"


# A change line ends with its reason, after this mark: the operator's text, which
# `pcm-ops logs --errors` does not read as an error ("error rate > 50%").
REASON_MARK = " reason: "


def reason_suffix(reason: str) -> str:
    """The log lines' reason suffix, on one line: a reason cannot forge log lines."""
    if not reason:
        return ""
    return REASON_MARK + reason.replace("\r", "\\r").replace("\n", "\\n")


def log_changes(changes: list[tuple[str, bool, bool]], tail: str) -> None:
    """A `Feature flag <name> changed: old -> new<tail>` line per change, in one record: the
    log formatter prefixes every line, so each greps alone, and a thousand changes cost one
    write instead of a thousand."""
    if changes:
        log.warning(
            "%s",
            "\n".join(
                f"Feature flag {name} changed: {fmt(old)} -> {fmt(new)}{tail}"
                for name, old, new in changes
            ),
        )
