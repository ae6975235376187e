"""Where the audit chain's HMAC keys live: kept like the credential key ring (PCM_AUDIT_KEYS as
JSON, or a 0600 JSON file in data_dir created on first use), never in the database, and never
one of the credential or session keys.

`anchor_sessions(sessions, settings)` is the one call that makes a process's sessions chain
new audit events with the key and checkpoint the head (backend.flags.audit_anchor).
"""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from backend.core.config import Settings
from backend.flags.audit_anchor import AuditAnchor, bind, restart
from backend.flags.audit_keys import AuditKeys
from backend.flags.checkpoints import CheckpointLog
from backend.security.credentials_crypto import KeyRingError, KeyRingSource

ENV_NAME = "PCM_AUDIT_KEYS"


def audit_key_source(settings: Settings) -> KeyRingSource:
    env = settings.audit_keys.get_secret_value() if settings.audit_keys else None
    return KeyRingSource(path=settings.audit_keys_file, env_value=env, env_name=ENV_NAME)


def load_audit_keys(settings: Settings) -> AuditKeys:
    """The audit key ring, the file created (0600) when neither it nor PCM_AUDIT_KEYS exists."""
    ring = audit_key_source(settings).load()
    try:
        return AuditKeys(active_id=ring.active_id, keys=dict(ring.keys))
    except ValueError as exc:
        raise KeyRingError(str(exc)) from None


def audit_anchor(settings: Settings) -> AuditAnchor:
    return AuditAnchor(
        keys=(keys := load_audit_keys(settings)),
        checkpoints=CheckpointLog(settings.audit_checkpoint_file, keys),
    )


def anchor_sessions(sessions: sessionmaker[Session], settings: Settings) -> AuditAnchor:
    """Anchor the audit chain written and verified through `sessions` (see module doc)."""
    anchor = audit_anchor(settings)
    bind(sessions, anchor)
    return anchor


def restart_checkpoints(settings: Settings, sessions: sessionmaker[Session], note: str) -> None:
    """The database was restored from a backup or made anew: re-anchor the checkpoints on its
    head (a signed restart line: the checkpoints before it described the replaced database)."""
    restart(sessions, audit_anchor(settings), note)
