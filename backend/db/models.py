"""Every model, imported in one place so that Alembic sees the whole metadata."""

from backend.aws.models import Provider
from backend.db.base import Base
from backend.db.sync_models import SyncedRow
from backend.flags.models import (
    AuditEvent,
    FlagRow,
    FlagStoreRow,
    RollbackAcknowledgement,
    RollbackRecord,
)
from backend.metrics.models import RequestMetric
from backend.security.models import ApiToken, LoginThrottle, User, WebSession

__all__ = [
    "ApiToken",
    "AuditEvent",
    "Base",
    "FlagRow",
    "FlagStoreRow",
    "LoginThrottle",
    "Provider",
    "RequestMetric",
    "RollbackAcknowledgement",
    "RollbackRecord",
    "SyncedRow",
    "User",
    "WebSession",
]
