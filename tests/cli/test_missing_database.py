"""With the server down and the SQLite file gone, no command makes an empty database in its
place: each says the database is missing and how to restore it (exit 5); a rollback still
journals over the last-known state; ./start.sh refuses a data directory that had one."""

from __future__ import annotations

import pytest

from tests.cli.conftest import Cli

MISSING = "is missing"
RESTORE = "db restore"


@pytest.fixture
def gone(initialized_cli: Cli) -> Cli:
    """An installation whose database file was deleted (with its -wal and -shm)."""
    for suffix in ("", "-wal", "-shm"):
        initialized_cli.db.with_name(initialized_cli.db.name + suffix).unlink(missing_ok=True)
    return initialized_cli


@pytest.mark.parametrize(
    "command",
    [
        ["flags", "list"],
        ["flags", "get", "csrf_tokens_enabled"],
        ["flags", "disable", "csrf_tokens_enabled"],
        ["flags", "enable", "csrf_tokens_enabled"],
        ["rollback", "flag", "csrf_tokens_enabled"],
        ["rollback", "emergency"],
        ["records", "list"],
        ["records", "show", "1"],
        ["user", "list"],
        ["user", "disable", "admin"],
        ["token", "list"],
        ["token", "revoke", "1"],
        ["aws", "reencrypt"],
    ],
    ids=" ".join,
)
def test_command__database_file_gone__says_so_and_creates_nothing(
    gone: Cli, command: list[str]
) -> None:
    # When a command that opens the database directly runs
    result = gone(*command)
    # Then it says the database is missing and how to restore it, and makes none
    assert result.exit_code == 5, result.output
    assert MISSING in result.output and RESTORE in result.output, result.output
    assert "db init" in result.output
    assert not gone.db.exists()


@pytest.mark.parametrize("command", [["db", "backup"], ["snapshot"], ["db", "verify"]])
def test_backup_and_verify__database_file_gone__point_at_restore(
    gone: Cli, command: list[str]
) -> None:
    result = gone(*command)
    assert result.exit_code != 0
    assert RESTORE in result.output, result.output
    assert not gone.db.exists()


def test_rollback__database_file_gone_with_last_known_state__journals(initialized_cli: Cli) -> None:
    # Given a last-known flag state (written when the database was last read)
    assert initialized_cli("flags", "list").exit_code == 0
    assert (initialized_cli.data_dir / "flags_last_known.json").exists()
    initialized_cli.db.unlink()
    # When the emergency rollback runs, Then it is journaled, with the warning, and no file made
    result = initialized_cli("rollback", "emergency", "--reason", "db gone")
    assert result.exit_code == 0, result.output
    assert "journaled as j-" in result.output
    assert MISSING in result.output and RESTORE in result.output
    assert not initialized_cli.db.exists()


def test_server_start__data_directory_had_a_database__refused(gone: Cli) -> None:
    result = gone("server", "start")
    assert result.exit_code == 4, result.output
    assert MISSING in result.output and RESTORE in result.output
    assert not gone.db.exists()


def test_db_init__database_file_gone__sets_one_up(gone: Cli) -> None:
    # The one command meant for it (with ./start.sh's first setup and init_db).
    assert gone("db", "init").exit_code == 0
    assert gone.db.exists()
    assert gone("flags", "list").exit_code == 0
