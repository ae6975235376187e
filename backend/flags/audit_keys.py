"""The keys that anchor the audit chain outside the database: events are chained with
HMAC-SHA256 under one of them, and head checkpoints are signed with them.

The keys never go into the database; the event stores only the id of the key that chained it
(none for the events written before keys existed, chained with plain SHA-256). Where the keys
live (a 0600 file in data_dir, or PCM_AUDIT_KEYS) is backend.security.audit_keys.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

MIN_KEY_BYTES = 32

Digest = Callable[[bytes], str]


def plain_digest(data: bytes) -> str:
    """The unkeyed SHA-256 of events written before the chain was keyed."""
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class AuditKeys:
    """HMAC keys by id, and the id of the one that chains new events and signs checkpoints."""

    active_id: str
    keys: Mapping[str, bytes] = field(repr=False)
    _digests: dict[str, Digest] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.active_id not in self.keys:
            raise ValueError(f"the active audit key {self.active_id!r} is not in the key ring")
        for key_id, key in self.keys.items():
            if len(key) < MIN_KEY_BYTES:
                raise ValueError(f"audit key {key_id!r} is shorter than {MIN_KEY_BYTES} bytes")
        digests = {key_id: _hmac_sha256(key) for key_id, key in self.keys.items()}
        object.__setattr__(self, "_digests", digests)

    def digest(self, key_id: str) -> Digest | None:
        """The keyed digest of `key_id`, or None when that key is not in the ring."""
        return self._digests.get(key_id)

    def sign(self, message: bytes, key_id: str | None = None) -> str:
        """HMAC-SHA256 of `message` under `key_id` (the active key by default)."""
        return hmac.digest(self.keys[key_id or self.active_id], message, "sha256").hex()

    def check(self, message: bytes, key_id: str, mac: str) -> bool | None:
        """Whether `mac` signs `message` under `key_id`; None when that key is not in the ring."""
        key = self.keys.get(key_id)
        if key is None:
            return None
        return hmac.compare_digest(hmac.digest(key, message, "sha256").hex(), mac)


def _hmac_sha256(key: bytes) -> Digest:
    """HMAC-SHA256 under `key` (RFC 2104) as a hex digest, with the padded key's two hash
    states computed once: each call then costs two hash-object copies, as cheap as one plain
    sha256 call, where hmac.new or hmac.digest set the key up again every time (5-10 times
    slower over the thousand events of an emergency rollback)."""
    block = hashlib.sha256().block_size
    if len(key) > block:
        key = hashlib.sha256(key).digest()
    key = key.ljust(block, b"\0")
    inner = hashlib.sha256(bytes(b ^ 0x36 for b in key))
    outer = hashlib.sha256(bytes(b ^ 0x5C for b in key))

    def digest(data: bytes) -> str:
        i = inner.copy()
        i.update(data)
        o = outer.copy()
        o.update(i.digest())
        return o.hexdigest()

    return digest
