"""The feature-flag engine. Import from here: `from backend.flags import is_enabled`."""

from backend.flags.errors import (
    ConfigurationError,
    EnableRefused,
    FlagError,
    FlagNotFound,
    FlagStoreBusy,
    FlagStoreUnavailable,
    RecordNotFound,
    RollbackModeActive,
)
from backend.flags.journal import store_busy
from backend.flags.outcomes import RollbackResult, ToggleResult
from backend.flags.registry import DEFAULT_FLAGS, FlagDefinition
from backend.flags.runtime import FlagRuntime
from backend.flags.snapshot import FlagState, Snapshot, current, is_enabled

__all__ = [
    "DEFAULT_FLAGS",
    "ConfigurationError",
    "EnableRefused",
    "FlagDefinition",
    "FlagError",
    "FlagNotFound",
    "FlagRuntime",
    "FlagState",
    "FlagStoreBusy",
    "FlagStoreUnavailable",
    "RecordNotFound",
    "RollbackModeActive",
    "RollbackResult",
    "Snapshot",
    "ToggleResult",
    "current",
    "is_enabled",
    "store_busy",
]
