"""The flag read of the security package: protections stay on while no flags are loaded."""

from __future__ import annotations

from backend.flags import FlagNotFound, is_enabled


def enabled(name: str) -> bool:
    """`is_enabled(name)`, or True when this process has no flag snapshot yet."""
    try:
        return is_enabled(name)
    except FlagNotFound:
        return True
