"""Key rotation of stored AWS credentials: add a key, re-seal every row, retire old keys."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from sqlalchemy.orm import Session, sessionmaker

from backend.aws.credentials import keys_in_use, reencrypt_all
from backend.security.credentials_crypto import KeyRingSource

log = logging.getLogger("pcm_ops_tools.aws")


@dataclass
class RotationReport:
    active_key: str
    resealed: int
    retired: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)


def reencrypt(
    *, sessions: sessionmaker[Session], keys: KeyRingSource, retire: bool = False
) -> RotationReport:
    """Re-seal every row under the active key (one transaction); then retire unused keys."""
    ring = keys.load()
    with sessions.begin() as db:
        resealed = reencrypt_all(db=db, ring=ring)
        in_use = keys_in_use(db=db)
    report = RotationReport(active_key=ring.active_id, resealed=resealed)
    unused = {k for k in ring.keys if k != ring.active_id and k not in in_use}
    if retire and unused:
        keys.save(ring.without(unused))
        report.retired = sorted(unused)
    report.kept = sorted(k for k in ring.keys if k not in report.retired)
    log.info(
        "AWS credential keys: active %s, %d re-sealed, retired %s",
        ring.active_id,
        resealed,
        report.retired or "none",
    )
    return report


def rotate_key(
    *, sessions: sessionmaker[Session], keys: KeyRingSource, retire: bool = False
) -> RotationReport:
    """Add a fresh key and make it active (old keys kept, so running servers still read
    every row), then re-seal every row under it."""
    keys.save(keys.load().with_new_key())
    return reencrypt(sessions=sessions, keys=keys, retire=retire)
