"""Signing keys for session cookies, and the choice between them (`new_secret_key_handling`).

- on: sign with `SECRET_KEY`, or with a key generated once into `data/secret_key` (0600);
  weak or well-known keys stop start-up with a message saying how to make a good one.
- off: sign with the legacy key from the settings (the behaviour before the flag).

Verification accepts the current key and `SECRET_KEY_FALLBACKS`, so rotating keys logs nobody
out; a cookie signed with a key that is not the current one is re-signed on the response.
The legacy key is well known, so it verifies only while the flag is off. Switching the flag
still logs nobody out: off, the new keys verify too; on, a legacy-signed cookie is accepted
only for a session the server itself gave a legacy cookie (`LEGACY_COOKIE` in its data, set
while the flag was off, cleared once the re-signed cookie comes back: see
backend/api/deps.py), never for any other session.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from itsdangerous import BadSignature, Signer

from backend.security.errors import WeakSecretKey

MIN_KEY_LENGTH = 32
_SALT = "pcm-ops-session"
# Session data key: the server's last cookie for this session was signed with the legacy key.
LEGACY_COOKIE = "legacy_cookie"
# Keys found in tutorials, templates and our own history: never accepted as SECRET_KEY.
KNOWN_KEYS = {
    "changeme",
    "change-me",
    "secret",
    "secret-key",
    "secret_key",
    "your-secret-key",
    "your-secret-key-here",
    "dev",
    "development",
    "insecure",
    "pcm-ops-tools-legacy-secret-key",
}
GENERATE_HINT = "generate one with: python -c 'import secrets; print(secrets.token_urlsafe(48))'"


def check_key(name: str, key: str) -> str:
    """Refuse a key that is short, well known, or made of few distinct characters."""
    lowered = key.strip().lower()
    if lowered in KNOWN_KEYS or any(lowered.startswith(k + "-") for k in ("changeme", "insecure")):
        raise WeakSecretKey(f"{name} is a well-known default key and is refused; {GENERATE_HINT}")
    if len(key) < MIN_KEY_LENGTH:
        raise WeakSecretKey(
            f"{name} is too short ({len(key)} characters, at least {MIN_KEY_LENGTH} needed); "
            f"{GENERATE_HINT}"
        )
    if len(set(key)) < 10:
        raise WeakSecretKey(f"{name} has too few distinct characters to be random; {GENERATE_HINT}")
    return key


def load_or_create_key_file(path: Path) -> str:
    """The key in `path`, created (0600, exclusively, so that workers agree) when missing."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        key = path.read_text().strip()
        if key:
            return check_key(str(path), key)
        raise WeakSecretKey(f"{path} is empty: delete it to have a new key generated") from None
    key = secrets.token_urlsafe(48)
    with os.fdopen(fd, "w") as fh:
        fh.write(key + "\n")
    return key


@dataclass(frozen=True)
class KeyRing:
    """The keys of both modes; which one signs is decided per call by the flag's value."""

    new_key: str
    fallbacks: tuple[str, ...]
    legacy_key: str

    @classmethod
    def build(
        cls, *, secret_key: str | None, fallbacks: list[str], legacy_key: str, key_file: Path
    ) -> KeyRing:
        """Check the configured keys (start-up refuses weak ones) and load or make the file key."""
        if secret_key is not None:
            new_key = check_key("SECRET_KEY", secret_key)
        else:
            new_key = load_or_create_key_file(key_file)
        for i, key in enumerate(fallbacks):
            check_key(f"SECRET_KEY_FALLBACKS[{i}]", key)
        return cls(new_key=new_key, fallbacks=tuple(fallbacks), legacy_key=legacy_key)

    def signing_key(self, new_handling: bool) -> str:
        return self.new_key if new_handling else self.legacy_key

    def verification_keys(self, new_handling: bool) -> list[str]:
        first = self.signing_key(new_handling)
        others = [self.new_key, *self.fallbacks]
        return [first, *(k for k in others if k != first)]

    def sign(self, value: str, *, new_handling: bool) -> str:
        return Signer(self.signing_key(new_handling), salt=_SALT).sign(value).decode()

    def unsign(self, signed: str, *, new_handling: bool) -> tuple[str, bool] | None:
        """(value, signed with the current key) for a valid signature, else None."""
        for i, key in enumerate(self.verification_keys(new_handling)):
            try:
                value = Signer(key, salt=_SALT).unsign(signed).decode()
            except BadSignature:
                continue
            return value, i == 0
        return None

    def unsign_legacy(self, signed: str) -> str | None:
        """The value of a cookie signed with the legacy key, for the caller to vouch for."""
        try:
            return Signer(self.legacy_key, salt=_SALT).unsign(signed).decode()
        except BadSignature:
            return None
