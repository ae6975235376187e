"""`pcm-ops server start` before it forks: init_db, or the last-known state when the database
is down, and FEATURE_FLAG_* checked against whichever it has."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from backend.cli.server import Refused, prepare_database, validate_flags
from backend.core.config import Settings
from backend.flags import ConfigurationError
from backend.flags.last_known import FlagRecord, save
from tests.e2e.conftest import free_port
from tests.postgres import scratch_database


def record(name: str) -> FlagRecord:
    return FlagRecord(name, True, False, False, "", 1, "low", "2026-01-01T00:00:00+00:00", "t")


@pytest.fixture
def closed_port(make_settings: Callable[..., Settings]) -> Settings:
    """Settings whose PostgreSQL does not answer (nothing listens on the port)."""
    settings = make_settings(
        database_url=f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/pcm",
        flag_overrides={"csrf_tokens_enabled": False},
    )
    settings.data_dir.mkdir(parents=True)
    return settings


def test_prepare_database__unreachable_with_last_known_state__starts_on_it(
    closed_port: Settings,
) -> None:
    # Given a last-known state from before the outage
    save(closed_port.state_file, 41, [record("csrf_tokens_enabled"), record("xss")])

    # When
    degraded = prepare_database(closed_port)

    # Then the server starts on it, and the overrides are checked against its flags
    assert degraded == (41, {"csrf_tokens_enabled", "xss"})
    validate_flags(closed_port, degraded[1])


def test_validate_flags__unreachable_and_override_names_no_known_flag__refused(
    closed_port: Settings,
) -> None:
    # Given FEATURE_FLAG_NO_SUCH_FLAG set, and only the last-known state to check it against
    save(closed_port.state_file, 41, [record("csrf_tokens_enabled")])
    settings = closed_port.model_copy(update={"flag_overrides": {"no_such_flag": True}})
    degraded = prepare_database(settings)
    assert degraded is not None

    # When / Then
    with pytest.raises(ConfigurationError, match="FEATURE_FLAG_NO_SUCH_FLAG names no feature"):
        validate_flags(settings, degraded[1])


def test_prepare_database__unreachable_without_last_known_state__refused_exit_5(
    closed_port: Settings,
) -> None:
    with pytest.raises(Refused, match="no last-known flag state") as refused:
        prepare_database(closed_port)
    assert refused.value.code == 5


def test_prepare_database__database_does_not_exist__refused_as_a_settings_error(
    make_settings: Callable[..., Settings],
) -> None:
    # Given a last-known state, but DATABASE_URL names a database that does not exist
    with scratch_database("pcm_start") as (_name, url):
        settings = make_settings(database_url=f"{url}_typo")
        settings.data_dir.mkdir(parents=True)
        save(settings.state_file, 3, [record("csrf_tokens_enabled")])

        # When / Then: a mistake in the settings is not waited out on old flags
        with pytest.raises(Refused, match=r"database set-up failed.*does not exist") as refused:
            prepare_database(settings)
    assert refused.value.code == 1
