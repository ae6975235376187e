"""Which environment variables the application reads, so tests can keep the developer's out."""

from __future__ import annotations

from pydantic import AliasChoices

from backend.core.config import Settings

FLAG_PREFIX = "FEATURE_FLAG_"


def settings_env_names() -> frozenset[str]:
    """Every environment name Settings reads: PCM_<field> and the fields' aliases."""
    prefix = str(Settings.model_config.get("env_prefix", ""))
    names = set()
    for name, field in Settings.model_fields.items():
        names.add(f"{prefix}{name}".upper())
        alias = field.validation_alias
        choices = alias.choices if isinstance(alias, AliasChoices) else [alias]
        names.update(c.upper() for c in choices if isinstance(c, str))
    return frozenset(names)


def is_leaky(name: str) -> bool:
    """Would this variable of the developer's shell change what the app under test does?"""
    upper = name.upper()
    return upper in settings_env_names() or upper.startswith(FLAG_PREFIX)
