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
    version: int
    journal_id: str | None = None  # set when journaled because the store was unreachable
    note: str | None = None  # when journaled: over which last-known state


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

    def as_dict(self) -> dict[str, object]:
        """For the API and the CLI: shallow (dataclasses.asdict deep-copies every change, a
        few ms for a thousand flags)."""
        return {name: getattr(self, name) for name in self.__slots__}


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
