"""Acknowledging rollbacks. After an emergency rollback every flag is off and the console says
so in a banner on every page until someone (operator or above) acknowledges the record: the
state is then known to the team. An acknowledgement is stored once per record (who, when, how)
and logged; acknowledging again answers with the first one."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from backend.db.base import utcnow
from backend.flags.errors import RecordNotFound
from backend.flags.journal import ALL
from backend.flags.models import RollbackAcknowledgement, RollbackRecord
from backend.flags.reports import acknowledgement_as_dict

log = logging.getLogger("pcm_ops_tools.flags")


@dataclass(frozen=True)
class Acknowledged:
    record_id: int
    by: str
    at: str
    method: str
    new: bool  # False: the record had been acknowledged before (by `by`)

    def as_dict(self) -> dict[str, object]:
        return {
            "record_id": self.record_id,
            "by": self.by,
            "at": self.at,
            "method": self.method,
            "already_acknowledged": not self.new,
        }


def unacknowledged_emergency(session: Session) -> RollbackRecord | None:
    """The latest emergency rollback (every flag) if nobody has acknowledged it yet; an older
    one is superseded by it, so acknowledging the latest clears the banner."""
    latest = session.scalars(
        select(RollbackRecord)
        .where(RollbackRecord.feature == ALL)
        .order_by(RollbackRecord.id.desc())
        .limit(1)
    ).first()
    return latest if latest is not None and latest.acknowledgement is None else None


def _stored(row: RollbackAcknowledgement, *, new: bool) -> Acknowledged:
    shown = acknowledgement_as_dict(row)
    assert shown is not None
    return Acknowledged(row.record_id, shown["by"], shown["at"], shown["method"], new)


def acknowledge(
    sessions: sessionmaker[Session], *, record_id: int, actor: str, method: str
) -> Acknowledged:
    """Record that `actor` has seen rollback record `record_id` (RecordNotFound if none)."""

    def existing(s: Session) -> RollbackAcknowledgement | None:
        return s.scalar(
            select(RollbackAcknowledgement).where(RollbackAcknowledgement.record_id == record_id)
        )

    try:
        with sessions.begin() as s:
            if s.get(RollbackRecord, record_id) is None:
                raise RecordNotFound(record_id)
            found = existing(s)
            if found is not None:
                return _stored(found, new=False)
            row = RollbackAcknowledgement(
                record_id=record_id, actor=actor, method=method, at=utcnow()
            )
            s.add(row)
            s.flush()
            done = _stored(row, new=True)
    except IntegrityError:
        # Two people at once: the unique record_id kept the first; answer with it.
        with sessions() as s:
            found = existing(s)
            if found is None:
                raise
            return _stored(found, new=False)
    log.info("Rollback record %s acknowledged by %s via %s", record_id, actor, method)
    return done
