"""Errors of the flag engine, as one tree.

FlagError
├── FlagNotFound            an unknown flag name (HTTP 404, CLI exit 2)
├── RollbackModeActive      enabling a flag while rollback mode is on (HTTP 409)
├── EnableRefused           enabling a flag this instance's settings cannot honour (HTTP 409)
├── RecordNotFound          an unknown rollback record id (HTTP 404)
├── FlagStoreUnavailable    the database cannot be read or written (HTTP 503)
│   └── FlagStoreBusy       its lock stayed taken past the bounded wait: retry (HTTP 503)
└── ConfigurationError      bad settings or FEATURE_FLAG_* values (start-up refused)
"""

from __future__ import annotations


class FlagError(Exception):
    """Base of every error the flag engine raises."""


class FlagNotFound(FlagError, KeyError):
    """The flag name is not registered."""

    def __init__(self, name: str) -> None:
        shown = name if len(name) <= 80 else name[:77] + "..."
        super().__init__(f"unknown feature flag: {shown!r}")
        self.name = name

    def __str__(self) -> str:
        return str(self.args[0])


class RecordNotFound(FlagError):
    """No rollback record has this id."""

    def __init__(self, record_id: int) -> None:
        super().__init__(f"no rollback record {record_id}")
        self.record_id = record_id


class RollbackModeActive(FlagError):
    """Flags cannot be enabled while FEATURE_FLAG_ROLLBACK_MODE_ENABLED is true."""


class EnableRefused(FlagError):
    """The flag cannot be enabled with these settings (postgresql_support without
    PCM_POSTGRES_URL): accepting it would switch nothing while saying it did."""


class FlagStoreUnavailable(FlagError):
    """The flag store (database) cannot be reached."""


class FlagStoreBusy(FlagStoreUnavailable):
    """The store answers, but another writer held its lock longer than the bounded wait.

    Contention, not an outage: nothing is journaled and the last-known state is not served."""


class ConfigurationError(FlagError):
    """Settings or FEATURE_FLAG_* environment variables are invalid."""
