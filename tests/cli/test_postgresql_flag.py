"""`pcm-ops flags enable postgresql_support` without PCM_POSTGRES_URL is refused (exit 4) with
the fix in the message, the server down or not (the rule lives in the flag runtime)."""

from __future__ import annotations

from tests.cli.conftest import Cli

FLAG = "postgresql_support"


def test_cli_enable__without_postgres_url_server_down__refused_exit_4(
    initialized_cli: Cli,
) -> None:
    result = initialized_cli("flags", "enable", FLAG)
    assert result.exit_code == 4, result.output
    assert "set PCM_POSTGRES_URL first" in result.output
    assert initialized_cli.flag(FLAG) is False
