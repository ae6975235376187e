"""Signing keys: weak ones refused, the generated file, rotation through fallbacks."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from backend.security.errors import WeakSecretKey
from backend.security.keys import KeyRing, check_key

GOOD = "k3Y-5x9QwErTyUiOpAsDfGhJkLzXcVbNm0123456789"
OTHER = "Zz9-Yy8Xx7Ww6Vv5Uu4Tt3Ss2Rr1Qq0PpOoNnMmLlKk"
LEGACY = "pcm-ops-tools-legacy-secret-key"


@pytest.mark.parametrize(
    ("key", "says"),
    [
        ("changeme", "well-known"),
        ("your-secret-key-here", "well-known"),
        (LEGACY, "well-known"),
        ("short-but-random-9f8e7d", "too short"),
        ("a" * 64, "too few distinct"),
        ("abababababababababababababababababab", "too few distinct"),
    ],
)
def test_weak_or_default_keys_are_refused_with_a_clear_message(key: str, says: str) -> None:
    with pytest.raises(WeakSecretKey) as caught:
        check_key("SECRET_KEY", key)
    assert says in str(caught.value) and "SECRET_KEY" in str(caught.value)
    assert "secrets.token_urlsafe" in str(caught.value)  # says how to make a good one


def test_a_generated_key_file_is_0600_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "data" / "secret_key"
    one = KeyRing.build(secret_key=None, fallbacks=[], legacy_key=LEGACY, key_file=path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    two = KeyRing.build(secret_key=None, fallbacks=[], legacy_key=LEGACY, key_file=path)
    assert one.new_key == two.new_key and len(one.new_key) >= 48


def test_a_weak_fallback_is_refused_too(tmp_path: Path) -> None:
    with pytest.raises(WeakSecretKey, match=r"SECRET_KEY_FALLBACKS\[0\]"):
        KeyRing.build(
            secret_key=GOOD, fallbacks=["changeme"], legacy_key=LEGACY, key_file=tmp_path / "k"
        )


def test_rotation_keeps_cookies_signed_with_a_fallback(tmp_path: Path) -> None:
    before = KeyRing.build(secret_key=OTHER, fallbacks=[], legacy_key=LEGACY, key_file=tmp_path)
    cookie = before.sign("sid", new_handling=True)
    after = KeyRing.build(
        secret_key=GOOD, fallbacks=[OTHER], legacy_key=LEGACY, key_file=tmp_path / "k"
    )
    assert after.unsign(cookie, new_handling=True) == ("sid", False)  # valid, to be re-signed
    assert after.unsign(after.sign("sid", new_handling=True), new_handling=True) == ("sid", True)
    dropped = KeyRing.build(secret_key=GOOD, fallbacks=[], legacy_key=LEGACY, key_file=tmp_path)
    assert dropped.unsign(cookie, new_handling=True) is None


def test_signing_key__legacy__verifies_only_while_the_flag_is_off(tmp_path: Path) -> None:
    ring = KeyRing.build(secret_key=GOOD, fallbacks=[], legacy_key=LEGACY, key_file=tmp_path)
    new, legacy = ring.sign("sid", new_handling=True), ring.sign("sid", new_handling=False)
    assert new != legacy
    assert ring.unsign(new, new_handling=True) == ("sid", True)
    assert ring.unsign(legacy, new_handling=False) == ("sid", True)
    # Off, the new key still verifies (switching off logs nobody out)...
    assert ring.unsign(new, new_handling=False) == ("sid", False)
    # ...but on, the well-known legacy key does not: the caller vouches for the session itself.
    assert ring.unsign(legacy, new_handling=True) is None
    assert ring.unsign_legacy(legacy) == "sid" and ring.unsign_legacy(new) is None
    assert ring.unsign(new[:-2] + "xx", new_handling=True) is None
