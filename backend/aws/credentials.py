"""Stored AWS credentials: sealed in the database, or in the sign-in session (legacy).

With `secure_credential_storage` on, credentials are AES-256-GCM sealed rows of
aws_credentials (see backend.security.credentials_crypto) and never in a session; any found in
a session are moved into sealed rows. Off (legacy), new credentials go into the server-side
session under "aws_credentials", and sealed rows stored earlier are still read, so switching
either way loses nothing. Functions here do not commit: the caller owns the transaction.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from backend.aws.errors import CredentialsNeedSession, CredentialsNotFound, CredentialsUnreadable
from backend.aws.models import AwsCredential, Provider
from backend.aws.secrets import AwsSecret
from backend.core.config import Settings
from backend.db.base import utcnow
from backend.security.credentials_crypto import (
    CredentialKeyRing,
    DecryptionFailed,
    KeyRingSource,
    Sealed,
)

SESSION_KEY = "aws_credentials"
AAD_CONTEXT = "pcm-ops/aws-credential/v1"


class SessionData(Protocol):
    """The caller's server-side session, as backend.security.sessions.SessionStore offers it."""

    def read(self) -> dict[str, Any]: ...

    def update(self, mutate: Callable[[dict[str, Any]], None]) -> Any: ...


@dataclass(frozen=True, slots=True)
class CredentialInfo:
    """What may be shown about stored credentials: never a secret."""

    provider_id: int
    access_key_hint: str
    has_session_token: bool
    role_arn: str | None
    storage: str  # "encrypted" or "session"
    key_id: str | None
    updated_at: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "provider_id": self.provider_id,
            "access_key_id": f"****{self.access_key_hint}",
            "has_session_token": self.has_session_token,
            "role_arn": self.role_arn,
            "storage": self.storage,
            "key_id": self.key_id,
            "updated_at": self.updated_at,
        }


def key_ring_source(settings: Settings) -> KeyRingSource:
    """The key ring of these settings: PCM_CREDENTIAL_KEYS, else the 0600 file in data_dir."""
    env = settings.credential_keys.get_secret_value() if settings.credential_keys else None
    return KeyRingSource(path=settings.credential_keys_file, env_value=env)


def aad(owner: str, credential_id: str, field: str) -> bytes:
    """Associated data: a sealed value opens only for its owner, its row and its field."""
    return json.dumps([AAD_CONTEXT, owner, credential_id, field]).encode()


# -- sealed rows -------------------------------------------------------------------------------
def _seal_into(row: AwsCredential, ring: CredentialKeyRing, secret: AwsSecret) -> None:
    def seal(field: str, value: str) -> Sealed:
        return ring.seal(value.encode(), aad(row.owner, row.id, field))

    row.key_id = ring.active_id
    row.access_key_id_enc = seal("access_key_id", secret.access_key_id).blob
    row.secret_access_key_enc = seal("secret_access_key", secret.secret_access_key).blob
    row.session_token_enc = (
        seal("session_token", secret.session_token).blob if secret.session_token else None
    )
    row.access_key_hint = secret.hint
    row.role_arn = secret.role_arn
    row.updated_at = utcnow()


def _open(row: AwsCredential, ring: CredentialKeyRing) -> AwsSecret:
    def open_(field: str, blob: bytes) -> str:
        return ring.open(Sealed(row.key_id, blob), aad(row.owner, row.id, field)).decode()

    return AwsSecret(
        access_key_id=open_("access_key_id", row.access_key_id_enc),
        secret_access_key=open_("secret_access_key", row.secret_access_key_enc),
        session_token=(
            open_("session_token", row.session_token_enc) if row.session_token_enc else None
        ),
        role_arn=row.role_arn,
    )


def _row(db: Session, owner: str, provider_id: int) -> AwsCredential | None:
    return db.scalar(
        select(AwsCredential).where(
            AwsCredential.owner == owner, AwsCredential.provider_id == provider_id
        )
    )


def seal_credentials(
    *, db: Session, ring: CredentialKeyRing, owner: str, provider_id: int, secret: AwsSecret
) -> AwsCredential:
    """Insert or replace the sealed row of (owner, provider)."""
    row = _row(db, owner, provider_id)
    if row is None:
        row = AwsCredential(id=secrets.token_hex(16), owner=owner, provider_id=provider_id)
        row.created_at = utcnow()
        db.add(row)
    _seal_into(row, ring, secret)
    db.flush()
    return row


# -- the legacy session ------------------------------------------------------------------------
def _session_entries(session: SessionData | None) -> dict[str, Any]:
    if session is None:
        return {}
    entries = session.read().get(SESSION_KEY) or {}
    return entries if isinstance(entries, dict) else {}


def _drop_from_session(session: SessionData, provider_ids: list[str] | None = None) -> None:
    def mutate(data: dict[str, Any]) -> None:
        entries = dict(data.get(SESSION_KEY) or {})
        for key in list(entries) if provider_ids is None else provider_ids:
            entries.pop(key, None)
        if entries:
            data[SESSION_KEY] = entries
        else:
            data.pop(SESSION_KEY, None)

    session.update(mutate)


def adopt_session_credentials(
    *, db: Session, ring: CredentialKeyRing, owner: str, session: SessionData | None
) -> list[str]:
    """Seal the credentials kept in the caller's session (flag on); the keys sealed.

    The caller commits, then calls forget_session_credentials: a failure in between leaves
    a copy in the session rather than nothing.
    """
    entries = _session_entries(session)
    for key, value in entries.items():
        if db.get(Provider, int(key)) is not None:
            seal_credentials(
                db=db,
                ring=ring,
                owner=owner,
                provider_id=int(key),
                secret=AwsSecret.from_session(value),
            )
    return list(entries)


def forget_session_credentials(*, session: SessionData | None, keys: list[str]) -> None:
    """Remove these entries from the caller's session."""
    if session is not None and keys:
        _drop_from_session(session, keys)


# -- use cases ---------------------------------------------------------------------------------
def store_credentials(
    *,
    db: Session,
    keys: KeyRingSource,
    owner: str,
    provider: Provider,
    secret: AwsSecret,
    secure: bool,
    session: SessionData | None,
) -> CredentialInfo:
    """Store the caller's credentials for `provider` where the flag says."""
    if secure:
        row = seal_credentials(
            db=db, ring=keys.load(), owner=owner, provider_id=provider.id, secret=secret
        )
        if session is not None and str(provider.id) in _session_entries(session):
            _drop_from_session(session, [str(provider.id)])
        return _info_of_row(row)
    if session is None:
        raise CredentialsNeedSession
    stored_at = utcnow().isoformat()

    def mutate(data: dict[str, Any]) -> None:
        entries = dict(data.get(SESSION_KEY) or {})
        entries[str(provider.id)] = secret.to_session(stored_at)
        data[SESSION_KEY] = entries

    session.update(mutate)
    return _info_of_session(provider.id, secret.to_session(stored_at))


def load_credentials(
    *,
    db: Session,
    keys: KeyRingSource,
    owner: str,
    provider: Provider,
    session: SessionData | None,
) -> AwsSecret:
    """The caller's usable credentials for `provider`: the session's first, then sealed ones."""
    entry = _session_entries(session).get(str(provider.id))
    if entry is not None:
        return AwsSecret.from_session(entry)
    row = _row(db, owner, provider.id)
    if row is None:
        raise CredentialsNotFound(owner, provider.name)
    try:
        return _open(row, keys.load())
    except DecryptionFailed as exc:
        raise CredentialsUnreadable(provider.name, str(exc)) from None


def list_credentials(
    *, db: Session, owner: str, session: SessionData | None
) -> list[CredentialInfo]:
    """What the caller has stored, per provider, without secrets."""
    found = {
        row.provider_id: _info_of_row(row)
        for row in db.scalars(select(AwsCredential).where(AwsCredential.owner == owner))
    }
    for key, entry in _session_entries(session).items():
        found[int(key)] = _info_of_session(int(key), entry)  # the session's copy is used first
    return [found[k] for k in sorted(found)]


def delete_credentials(
    *, db: Session, owner: str, provider_id: int, session: SessionData | None
) -> bool:
    """Delete the caller's credentials for a provider everywhere they are; True if any were."""
    result = db.execute(
        delete(AwsCredential).where(
            AwsCredential.owner == owner, AwsCredential.provider_id == provider_id
        )
    )
    had_row = bool(result.rowcount)  # type: ignore[attr-defined]
    in_session = str(provider_id) in _session_entries(session)
    if in_session and session is not None:
        _drop_from_session(session, [str(provider_id)])
    return had_row or in_session


def reencrypt_all(*, db: Session, ring: CredentialKeyRing) -> int:
    """Re-seal every row not under the active key; the number re-sealed."""
    count = 0
    for row in db.scalars(select(AwsCredential).where(AwsCredential.key_id != ring.active_id)):
        _seal_into(row, ring, _open(row, ring))
        count += 1
    db.flush()
    return count


def keys_in_use(*, db: Session) -> set[str]:
    return set(db.scalars(select(AwsCredential.key_id).distinct()))


def _info_of_row(row: AwsCredential) -> CredentialInfo:
    return CredentialInfo(
        provider_id=row.provider_id,
        access_key_hint=row.access_key_hint,
        has_session_token=row.session_token_enc is not None,
        role_arn=row.role_arn,
        storage="encrypted",
        key_id=row.key_id,
        updated_at=row.updated_at.isoformat(),
    )


def _info_of_session(provider_id: int, entry: dict[str, Any]) -> CredentialInfo:
    return CredentialInfo(
        provider_id=provider_id,
        access_key_hint=str(entry.get("access_key_id", ""))[-4:],
        has_session_token=bool(entry.get("session_token")),
        role_arn=entry.get("role_arn"),
        storage="session",
        key_id=None,
        updated_at=str(entry.get("stored_at", "")),
    )


# -- the sweep when the flag comes on ----------------------------------------------------------
def seal_all_session_credentials(*, db: Session, ring: CredentialKeyRing) -> int:
    """Move credentials out of every server-side session into sealed rows, in one transaction.

    Reads and writes web_sessions directly with a compare-and-set on its revision (the
    session store addresses sessions by their plaintext id, which is not stored).
    """
    from backend.security.models import User, WebSession

    moved = 0
    rows = db.execute(
        select(WebSession.id_hash, WebSession.data, WebSession.revision, User.username)
        .join(User, User.id == WebSession.user_id)
        .where(WebSession.data.contains(SESSION_KEY))
    ).all()
    for id_hash, raw, revision, username in rows:
        data = json.loads(raw)
        entries = data.pop(SESSION_KEY, None) or {}
        for key, value in entries.items():
            if db.get(Provider, int(key)) is not None:
                seal_credentials(
                    db=db,
                    ring=ring,
                    owner=f"user:{username}",
                    provider_id=int(key),
                    secret=AwsSecret.from_session(value),
                )
                moved += 1
        result = db.execute(
            update(WebSession)
            .where(WebSession.id_hash == id_hash, WebSession.revision == revision)
            .values(data=json.dumps(data), revision=WebSession.revision + 1)
        )
        if not result.rowcount:  # type: ignore[attr-defined]
            raise RuntimeError("a session changed during the credential sweep; run it again")
    return moved
