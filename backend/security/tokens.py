"""API tokens: random secrets shown once, stored as SHA-256 hashes, each carrying a role."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.db.base import utcnow
from backend.security.errors import TokenNotFound
from backend.security.models import ApiToken

TOKEN_PREFIX = "pcm_"
# Tokens carry 256 bits of entropy, so a fast hash is enough (no password-style KDF needed).
_LAST_USED_RESOLUTION = timedelta(minutes=1)


class Role(StrEnum):
    VIEWER = "viewer"
    OPERATOR = "operator"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return {"viewer": 0, "operator": 1, "admin": 2}[self.value]


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: a name for the audit trail and a role for permissions."""

    name: str  # "user:<username>" or "token:<name>", as the audit trail shows it
    role: Role
    kind: str  # "token" or "session"
    user_id: int | None = None
    session_id: str | None = None

    def can(self, needed: Role) -> bool:
        return self.role.rank >= needed.rank


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(session: Session, *, name: str, role: Role) -> tuple[ApiToken, str]:
    """Create a token; the plaintext is returned once and never stored."""
    plaintext = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(
        name=name, token_hash=hash_token(plaintext), prefix=plaintext[:10], role=str(role)
    )
    session.add(row)
    session.flush()
    return row, plaintext


def authenticate_token(session: Session, plaintext: str) -> Principal | None:
    """The principal of a valid, unrevoked token, recording when it was last used."""
    if not plaintext.startswith(TOKEN_PREFIX) or len(plaintext) > 200:
        return None
    row = session.scalar(select(ApiToken).where(ApiToken.token_hash == hash_token(plaintext)))
    if row is None or row.revoked_at is not None:
        return None
    now = utcnow()
    if row.last_used_at is None or now - row.last_used_at > _LAST_USED_RESOLUTION:
        row.last_used_at = now
    return Principal(name=f"token:{row.name}", role=Role(row.role), kind="token")


def list_tokens(session: Session) -> list[ApiToken]:
    return list(session.scalars(select(ApiToken).order_by(ApiToken.id)))


def revoke_token(session: Session, *, token_id: int) -> ApiToken:
    """Revoke a token (idempotent); it stops working at once."""
    row = session.get(ApiToken, token_id)
    if row is None:
        raise TokenNotFound(str(token_id))
    if row.revoked_at is None:
        row.revoked_at = utcnow()
    return row


def token_out(row: ApiToken) -> dict[str, object]:
    """A token as the API and the CLI show it (never the secret)."""
    return {
        "id": row.id,
        "name": row.name,
        "prefix": row.prefix,
        "role": row.role,
        "created_at": row.created_at.isoformat(),
        "last_used_at": row.last_used_at.isoformat() if row.last_used_at else None,
        "revoked_at": row.revoked_at.isoformat() if row.revoked_at else None,
    }


def token_is_valid(session: Session, plaintext: str) -> bool:
    row = session.scalar(select(ApiToken).where(ApiToken.token_hash == hash_token(plaintext)))
    return row is not None and row.revoked_at is None


class TokenMemory:
    """Tokens this process verified against the database recently (hash → principal), so that
    a known caller can still roll back while the database is unreachable."""

    def __init__(self, *, ttl: float = 3600.0, max_entries: int = 1000) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._known: dict[str, tuple[Principal, float]] = {}
        self._lock = threading.Lock()

    def remember(self, plaintext: str, principal: Principal) -> None:
        with self._lock:
            if len(self._known) >= self.max_entries:
                oldest = min(self._known, key=lambda h: self._known[h][1])
                del self._known[oldest]
            self._known[hash_token(plaintext)] = (principal, time.monotonic())

    def forget(self, plaintext: str) -> None:
        with self._lock:
            self._known.pop(hash_token(plaintext), None)

    def recall(self, plaintext: str) -> Principal | None:
        """The principal of a token verified less than `ttl` seconds ago, else None."""
        wanted = hash_token(plaintext)
        now = time.monotonic()
        found: Principal | None = None
        with self._lock:
            for known, (principal, verified_at) in self._known.items():
                if hmac.compare_digest(known, wanted) and now - verified_at <= self.ttl:
                    found = principal
        return found


def admin_file_principal(path: Path, plaintext: str) -> Principal | None:
    """The admin principal if `plaintext` is the token in the local admin token file, which
    must be readable by its owner only (0600)."""
    try:
        if path.stat().st_mode & 0o077:
            return None
        stored = path.read_text().strip()
    except OSError:
        return None
    if not stored or not hmac.compare_digest(hash_token(stored), hash_token(plaintext)):
        return None
    return Principal(name="token:admin", role=Role.ADMIN, kind="token")
