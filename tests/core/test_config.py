"""Settings and the FEATURE_FLAG_* variables: clear errors, no surprises."""

from __future__ import annotations

from pathlib import Path

import pytest

from backend.core.config import (
    Settings,
    flag_env,
    from_environ,
    get_settings,
    parse_bool,
)
from backend.flags import ConfigurationError

ROLLBACK_ENV = "FEATURE_FLAG_ROLLBACK_MODE_ENABLED"


def test_paths_derive_from_the_data_and_log_dirs(tmp_path: Path) -> None:
    s = Settings(data_dir=tmp_path / "data", log_dir=tmp_path / "logs")
    assert s.sqlite_path == tmp_path / "data" / "pcm_ops_tools.db"
    assert s.effective_database_url == f"sqlite:///{tmp_path}/data/pcm_ops_tools.db"
    assert s.admin_token_path == tmp_path / "data" / "admin_token"
    assert s.state_file == tmp_path / "data" / "flags_last_known.json"
    assert s.log_file == tmp_path / "logs" / "pcm_ops_tools.log"
    assert (s.port, s.rollback_mode, s.flag_overrides) == (8500, False, {})


def test_relative_dirs_become_absolute(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    s = Settings(data_dir=Path("d"), log_dir=Path("~/l"))
    assert s.data_dir == tmp_path / "d"
    assert s.log_dir.is_absolute()
    assert "~" not in str(s.log_dir)


def test_database_url_wins_over_sqlite(tmp_path: Path) -> None:
    url = "postgresql+psycopg://u:p@db/pcm"
    assert Settings(data_dir=tmp_path, database_url=url).effective_database_url == url


@pytest.mark.parametrize(("host", "url"), [("0.0.0.0", "127.0.0.1"), ("10.0.0.5", "10.0.0.5")])
def test_base_url(host: str, url: str) -> None:
    assert Settings(host=host, port=9000).base_url == f"http://{url}:9000"


@pytest.mark.parametrize("raw", ["true", "TRUE", " 1 ", "yes", "on"])
def test_parse_bool_true(raw: str) -> None:
    assert parse_bool("X", raw) is True


@pytest.mark.parametrize("raw", ["false", "False", "0", "no", "off"])
def test_parse_bool_false(raw: str) -> None:
    assert parse_bool("X", raw) is False


@pytest.mark.parametrize("raw", ["", "maybe", "2", "enabled", "tru"])
def test_parse_bool_refuses_anything_else_with_the_variable_name(raw: str) -> None:
    with pytest.raises(ConfigurationError, match=f"X={raw!r} is not a boolean"):
        parse_bool("X", raw)


def test_flag_env_reads_rollback_mode_and_overrides() -> None:
    rollback, overrides = flag_env(
        {
            ROLLBACK_ENV: "true",
            "FEATURE_FLAG_CSRF_TOKENS_ENABLED": "false",
            "FEATURE_FLAG_POSTGRESQL_SUPPORT": "on",
            "PATH": "/bin",
            "PCM_LOG_LEVEL": "DEBUG",
        }
    )
    assert rollback is True
    assert overrides == {"csrf_tokens_enabled": False, "postgresql_support": True}


def test_flag_env_of_an_empty_environment() -> None:
    assert flag_env({}) == (False, {})


def test_from_environ_refuses_an_invalid_rollback_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ROLLBACK_ENV, "maybe")
    with pytest.raises(ConfigurationError, match=f"{ROLLBACK_ENV}='maybe' is not a boolean"):
        from_environ()


def test_from_environ_refuses_an_invalid_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FEATURE_FLAG_CSRF_TOKENS_ENABLED", "disabled")
    with pytest.raises(ConfigurationError, match="FEATURE_FLAG_CSRF_TOKENS_ENABLED"):
        from_environ()


def test_from_environ_reads_flags_and_pcm_settings(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(ROLLBACK_ENV, "true")
    monkeypatch.setenv("FEATURE_FLAG_CSRF_TOKENS_ENABLED", "false")
    monkeypatch.setenv("PCM_DATA_DIR", str(tmp_path / "d"))
    monkeypatch.setenv("PORT", "8600")
    s = from_environ()
    assert s.rollback_mode is True
    assert s.flag_overrides == {"csrf_tokens_enabled": False}
    assert s.data_dir == tmp_path / "d"
    assert s.port == 8600


@pytest.mark.parametrize(("var", "value"), [("PORT", "99999"), ("PCM_FLAG_POLL_INTERVAL", "0")])
def test_from_environ_turns_bad_settings_into_a_configuration_error(
    monkeypatch: pytest.MonkeyPatch, var: str, value: str
) -> None:
    monkeypatch.setenv(var, value)
    with pytest.raises(ConfigurationError, match="invalid settings"):
        from_environ()


def test_the_outer_environment_does_not_leak_into_tests() -> None:
    # The autouse fixture removed FEATURE_FLAG_*, PCM_* and friends.
    s = get_settings()
    assert (s.rollback_mode, s.flag_overrides, s.database_url, s.port) == (False, {}, None, 8500)
