"""API tokens: random secrets shown once, stored as SHA-256 hashes, each carrying a role."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum

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
