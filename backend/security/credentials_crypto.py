"""AES-256-GCM sealing of stored credentials, under a key ring that rotates without data loss.

Each value gets a random 96-bit nonce; the blob is nonce || ciphertext || tag, and the id of
the key that sealed it is stored beside it. The associated data binds a value to its owner,
its record and its field, so a blob copied to another row or field fails to open. The ring
lives in PCM_CREDENTIAL_KEYS (JSON) or in a 0600 JSON file created on first use; it is never
the session-signing key. Fernet is not used: it is AES-128-CBC, which ASVS 5 rates legacy.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

NONCE_BYTES = 12
KEY_BYTES = 32
FORMAT_VERSION = 1


class KeyRingError(Exception):
    """The key ring is missing, malformed, read-only or lacks a key that is needed."""


class DecryptionFailed(Exception):
    """A sealed value did not open: wrong key, wrong associated data or tampered bytes."""


@dataclass(frozen=True, slots=True)
class Sealed:
    key_id: str
    blob: bytes


@dataclass(frozen=True)
class CredentialKeyRing:
    """Keys by id, and the id of the one that seals new values."""

    active_id: str
    keys: dict[str, bytes] = field(repr=False)
    created: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.active_id not in self.keys:
            raise KeyRingError(f"the active key {self.active_id!r} is not in the key ring")
        for key_id, key in self.keys.items():
            if len(key) != KEY_BYTES:
                raise KeyRingError(f"key {key_id!r} is not {KEY_BYTES * 8} bits")

    def seal(self, plaintext: bytes, aad: bytes) -> Sealed:
        """Encrypt under the active key with a fresh random nonce."""
        nonce = os.urandom(NONCE_BYTES)
        ciphertext = AESGCM(self.keys[self.active_id]).encrypt(nonce, plaintext, aad)
        return Sealed(self.active_id, nonce + ciphertext)

    def open(self, sealed: Sealed, aad: bytes) -> bytes:
        """Decrypt with the key that sealed the value."""
        key = self.keys.get(sealed.key_id)
        if key is None:
            raise DecryptionFailed(f"key {sealed.key_id!r} is no longer in the key ring")
        nonce, ciphertext = sealed.blob[:NONCE_BYTES], sealed.blob[NONCE_BYTES:]
        try:
            return AESGCM(key).decrypt(nonce, ciphertext, aad)
        except InvalidTag:
            raise DecryptionFailed("authentication failed (wrong key or data)") from None

    def with_new_key(self) -> CredentialKeyRing:
        """This ring plus a fresh key that becomes the active one."""
        key_id = new_key_id()
        return CredentialKeyRing(
            active_id=key_id,
            keys={**self.keys, key_id: AESGCM.generate_key(bit_length=256)},
            created={**self.created, key_id: datetime.now(UTC).isoformat()},
        )

    def without(self, key_ids: set[str]) -> CredentialKeyRing:
        """This ring minus `key_ids` (never the active key)."""
        if self.active_id in key_ids:
            raise KeyRingError("the active key cannot be retired")
        return CredentialKeyRing(
            active_id=self.active_id,
            keys={k: v for k, v in self.keys.items() if k not in key_ids},
            created={k: v for k, v in self.created.items() if k not in key_ids},
        )

    def to_json(self) -> str:
        keys = [
            {
                "id": key_id,
                "key": base64.b64encode(key).decode(),
                "created_at": self.created.get(key_id, ""),
            }
            for key_id, key in self.keys.items()
        ]
        return json.dumps(
            {"version": FORMAT_VERSION, "active": self.active_id, "keys": keys}, indent=2
        )


def new_key_id() -> str:
    return f"k{datetime.now(UTC):%Y%m%d%H%M%S}-{secrets.token_hex(3)}"


def fresh_keyring() -> CredentialKeyRing:
    key_id = new_key_id()
    return CredentialKeyRing(
        active_id=key_id,
        keys={key_id: AESGCM.generate_key(bit_length=256)},
        created={key_id: datetime.now(UTC).isoformat()},
    )


def parse_keyring(text: str, source: str) -> CredentialKeyRing:
    """A key ring from its JSON form; KeyRingError saying what is wrong otherwise."""
    try:
        data: Any = json.loads(text)
        keys = {str(k["id"]): base64.b64decode(k["key"], validate=True) for k in data["keys"]}
        created = {str(k["id"]): str(k.get("created_at", "")) for k in data["keys"]}
        return CredentialKeyRing(active_id=str(data["active"]), keys=keys, created=created)
    except KeyRingError as exc:
        raise KeyRingError(f"{source}: {exc}") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise KeyRingError(
            f"{source} is not a valid key ring (JSON with 'active' and 'keys': "
            f"[{{'id', 'key' (base64 of 32 bytes)}}]): {type(exc).__name__}"
        ) from None


def _write_0600(path: Path, text: str, *, exclusive: bool) -> bool:
    """Write atomically with mode 0600; with `exclusive`, False if the file already exists."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        if exclusive:
            try:
                os.link(tmp, path)  # fails if another process created the ring first
            except FileExistsError:
                return False
        else:
            os.replace(tmp, path)
        return True
    finally:
        tmp.unlink(missing_ok=True)


class KeyRingSource:
    """Where the ring comes from: the environment value, or a file reloaded when it changes."""

    def __init__(
        self, *, path: Path, env_value: str | None = None, env_name: str = "PCM_CREDENTIAL_KEYS"
    ) -> None:
        self.path = path
        self.env_value = env_value
        self.env_name = env_name
        self._lock = threading.Lock()
        self._cached: tuple[tuple[int, int], CredentialKeyRing] | None = None

    @property
    def from_env(self) -> bool:
        return bool(self.env_value)

    def load(self) -> CredentialKeyRing:
        """The current ring, creating the file on first use."""
        if self.env_value:
            return parse_keyring(self.env_value, self.env_name)
        with self._lock:
            try:
                st = self.path.stat()
            except FileNotFoundError:
                _write_0600(self.path, fresh_keyring().to_json(), exclusive=True)
                st = self.path.stat()
            stamp = (st.st_mtime_ns, st.st_size)
            if self._cached is not None and self._cached[0] == stamp:
                return self._cached[1]
            ring = parse_keyring(self.path.read_text(), str(self.path))
            self._cached = (stamp, ring)
            return ring

    def save(self, ring: CredentialKeyRing) -> None:
        """Replace the ring file (rotation); refused when the ring comes from the environment."""
        if self.env_value:
            raise KeyRingError(
                f"the key ring comes from {self.env_name}: change that variable instead"
            )
        with self._lock:
            _write_0600(self.path, ring.to_json(), exclusive=False)
            self._cached = None
