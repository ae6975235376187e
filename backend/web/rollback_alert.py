"""What the banner on every page says after an emergency rollback, until someone
acknowledges it (see backend/flags/acknowledgements.py)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from fastapi import Request
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from backend.flags.acknowledgements import unacknowledged_emergency

log = logging.getLogger("pcm_ops_tools.web")


@dataclass(frozen=True)
class RollbackAlert:
    record_id: int
    at: datetime
    actor: str
    reason: str
    changed: int


def rollback_alert(request: Request) -> RollbackAlert | None:
    """The latest emergency rollback nobody has acknowledged, for signed-in callers; a
    database that cannot answer costs the banner, never the page."""
    if getattr(request.state, "principal", None) is None:
        return None
    sessions: sessionmaker[Session] | None = getattr(request.app.state, "sessions", None)
    if sessions is None:
        return None
    try:
        with sessions() as s:
            row = unacknowledged_emergency(s)
            if row is None:
                return None
            return RollbackAlert(row.id, row.started_at, row.actor, row.trigger, len(row.changes))
    except SQLAlchemyError as exc:
        log.info("rollback banner skipped: %s", str(exc).splitlines()[0])
        return None
