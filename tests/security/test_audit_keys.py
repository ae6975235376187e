"""Where the audit key ring lives: PCM_AUDIT_KEYS, else a 0600 file in data_dir made once."""

from __future__ import annotations

import base64
import json
import stat
from collections.abc import Callable

import pytest

from backend.core.config import Settings
from backend.security.audit_keys import audit_anchor, load_audit_keys
from backend.security.credentials_crypto import KeyRingError


def ring(key_id: str, key: bytes) -> str:
    return json.dumps(
        {"active": key_id, "keys": [{"id": key_id, "key": base64.b64encode(key).decode()}]}
    )


def test_audit_keys__nothing_configured__a_0600_file_made_once_and_reused(
    settings: Settings,
) -> None:
    first = load_audit_keys(settings)
    assert stat.S_IMODE(settings.audit_keys_file.stat().st_mode) == 0o600
    assert load_audit_keys(settings) == first
    assert len(first.keys[first.active_id]) == 32


def test_audit_keys__from_the_environment__no_file_and_that_key(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(audit_keys=ring("ops-2026", b"k" * 32))
    keys = load_audit_keys(settings)
    assert (keys.active_id, keys.keys["ops-2026"]) == ("ops-2026", b"k" * 32)
    assert not settings.audit_keys_file.exists()
    anchor = audit_anchor(settings)
    assert anchor.checkpoints is not None
    assert anchor.checkpoints.path == settings.audit_checkpoint_file


@pytest.mark.parametrize("value", ["not json", ring("short", b"k" * 16)])
def test_audit_keys__malformed_environment_value__refused_naming_the_variable(
    make_settings: Callable[..., Settings], value: str
) -> None:
    with pytest.raises(KeyRingError, match="PCM_AUDIT_KEYS"):
        load_audit_keys(make_settings(audit_keys=value))
