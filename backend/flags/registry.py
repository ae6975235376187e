"""The flags PCM-Ops Tools ships with: what each gates, its phase, risk and rollback value."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Risk(StrEnum):
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"


@dataclass(frozen=True, slots=True)
class FlagDefinition:
    """A flag as code defines it; its stored state lives in the database."""

    name: str
    description: str
    phase: int
    risk: Risk
    default: bool
    rollback_value: bool = False
    requires_restart: bool = False


DEFAULT_FLAGS: tuple[FlagDefinition, ...] = (
    FlagDefinition(
        "new_secret_key_handling",
        "Session key from SECRET_KEY or a generated 0600 key file; weak keys refused; "
        "rotation through fallback keys. Off: legacy key from config.",
        phase=1,
        risk=Risk.HIGH,
        default=True,
    ),
    FlagDefinition(
        "xss_protection_enabled",
        "Strict Content-Security-Policy with nonces, nosniff, frame denial, referrer policy. "
        "Off: legacy headers.",
        phase=1,
        risk=Risk.HIGH,
        default=True,
    ),
    FlagDefinition(
        "csrf_tokens_enabled",
        "State-changing cookie-session requests need a CSRF token. Off: not checked.",
        phase=1,
        risk=Risk.HIGH,
        default=True,
    ),
    FlagDefinition(
        "secure_credential_storage",
        "AWS credentials encrypted at rest with AES-256-GCM. Off: kept in the server session.",
        phase=1,
        risk=Risk.HIGH,
        default=True,
    ),
    FlagDefinition(
        "thread_safe_sessions",
        "Concurrent requests of one session never lose updates. Off: read-modify-write.",
        phase=2,
        risk=Risk.MEDIUM,
        default=True,
    ),
    FlagDefinition(
        "atomic_session_updates",
        "A session update is all-or-nothing. Off: field-by-field writes.",
        phase=2,
        risk=Risk.MEDIUM,
        default=True,
    ),
    FlagDefinition(
        "enhanced_error_handling",
        "RFC 9457 problem+json errors with a request id, no internals leaked. "
        "Off: framework defaults.",
        phase=2,
        risk=Risk.MEDIUM,
        default=True,
    ),
    FlagDefinition(
        "pydantic_v2_schemas",
        "Strict request schemas: unknown fields refused, no type coercion. Off: lenient.",
        phase=2,
        risk=Risk.MEDIUM,
        default=True,
        requires_restart=True,
    ),
    FlagDefinition(
        "postgresql_support",
        "Primary database is PostgreSQL from PCM_POSTGRES_URL, switched at the next start with "
        "the data copied and the audit chain verified (enabling it without PCM_POSTGRES_URL is "
        "refused). Off: the SQLite file, with what was written on PostgreSQL copied back. "
        "With DATABASE_URL set, that database is pinned and this flag only reports.",
        phase=3,
        risk=Risk.HIGH,
        default=False,
        requires_restart=True,
    ),
)

MAX_FLAG_NAME_LENGTH = 100
