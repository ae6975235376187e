"""What anchors the audit chain outside the database (the HMAC keys and the checkpoint file),
bound to the sessions that write and verify it.

`bind(sessions, anchor)` once where the sessions are made (the app, the CLI): every session of
that factory then chains new events with the active key, and after each commit that appended
events a signed checkpoint of the new head is written. Sessions without an anchor (tests,
tools) chain with plain SHA-256, as before keys existed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import event
from sqlalchemy.orm import Session, sessionmaker

from backend.flags.audit_keys import AuditKeys
from backend.flags.checkpoints import RESTART, Checkpoint, CheckpointLog
from backend.flags.models import FlagStoreRow

log = logging.getLogger("pcm_ops_tools.audit")
_ANCHOR = "pcm_audit_anchor"
_PENDING = "pcm_audit_pending"
_LISTENING = "_pcm_audit_listening"


@dataclass(frozen=True)
class AuditAnchor:
    keys: AuditKeys
    checkpoints: CheckpointLog | None


def bind(sessions: sessionmaker[Session], anchor: AuditAnchor) -> None:
    """Make every session of `sessions` chain with `anchor`'s keys and checkpoint its head."""
    info = dict(sessions.kw.get("info") or {})
    info[_ANCHOR] = anchor
    sessions.configure(info=info)
    # Marked on the factory itself, not asked of event.contains: SQLAlchemy's event registry
    # is keyed by id(), and a factory made where a collected one stood could be taken for it,
    # leaving the new one without its listeners (seen as a missing checkpoint file).
    if not getattr(sessions, _LISTENING, False):
        event.listen(sessions, "after_commit", _after_commit)
        event.listen(sessions, "after_soft_rollback", _after_rollback)
        setattr(sessions, _LISTENING, True)


def anchor_of(session: Session) -> AuditAnchor | None:
    anchor = session.info.get(_ANCHOR)
    return anchor if isinstance(anchor, AuditAnchor) else None


def note_head(session: Session, *, version: int, events: int, head: str) -> None:
    """Remember the head this transaction writes; it is checkpointed once committed."""
    session.info[_PENDING] = (version, events, head)


def _after_commit(session: Session) -> None:
    pending = session.info.pop(_PENDING, None)
    anchor = anchor_of(session)
    if pending is None or anchor is None or anchor.checkpoints is None:
        return
    version, events, head = pending
    try:
        anchor.checkpoints.write(version=version, events=events, head=head)
    except OSError as exc:
        # The change is committed; a missing checkpoint only narrows what verify can prove.
        log.warning("audit checkpoint not written to %s: %s", anchor.checkpoints.path, exc)


def _after_rollback(session: Session, _previous_transaction: object) -> None:
    session.info.pop(_PENDING, None)


def restart(sessions: sessionmaker[Session], anchor: AuditAnchor, note: str) -> Checkpoint | None:
    """After a database was restored from a backup: checkpoint the restored head as a restart,
    so that the checkpoints of the replaced database stop applying (the chain legitimately
    went back). None when there is no checkpoint file or no flag store."""
    if anchor.checkpoints is None:
        return None
    with sessions() as s:
        store = s.get(FlagStoreRow, 1)
        if store is None:
            return None
        version, events, head = int(store.version), store.audit_count, store.audit_head
    return anchor.checkpoints.write(
        version=version, events=events, head=head, kind=RESTART, note=note
    )
