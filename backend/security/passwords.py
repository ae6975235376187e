"""Password hashing with Argon2id (argon2-cffi), and a dummy check that costs the same."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

MIN_LENGTH = 12
_hasher = PasswordHasher()
# Verified against when the user does not exist, so that the answer takes as long either way.
_DUMMY_HASH = _hasher.hash("pcm-ops-no-such-user-dummy-password")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def burn_verification(password: str) -> None:
    """Spend the time of one verification (unknown or disabled user)."""
    verify_password(_DUMMY_HASH, password)


def needs_rehash(password_hash: str) -> bool:
    return _hasher.check_needs_rehash(password_hash)
