"""`pcm-ops db sync --from postgresql` after an outage: the SQLite file is the primary, the
writes made on PostgreSQL since the last sync come back (real SQLite file, real scratch
PostgreSQL database, the CLI run in-process)."""

from __future__ import annotations

import json

from click.testing import Result
from sqlalchemy import select

from backend.core import primary_file
from backend.core.primary_file import PrimaryState
from backend.security.models import User
from tests.cli.conftest import Cli
from tests.db.sync_sides import Sides, diverge, sides
from tests.db.test_merge import snapshot
from tests.postgres import admin_execute

__all__ = ["sides"]


def after_outage(sides: Sides) -> PrimaryState:
    """The primary file as the start-up leaves it when PostgreSQL did not answer."""
    synced_at = sides.synced_at.isoformat(timespec="seconds")
    state = PrimaryState(
        backend="sqlite", synced_at=synced_at, unsynced_since=synced_at, note="outage"
    )
    primary_file.write(sides.settings.primary_state_file, state)
    return state


def sync(cli: Cli, sides: Sides, *args: str) -> Result:
    assert sides.settings.postgres_url is not None
    env = {"PCM_POSTGRES_URL": sides.settings.postgres_url}
    return cli("db", "sync", "--from", "postgresql", *args, extra_env=env)


def test_db_sync__after_outage__writes_back_and_unsynced_cleared(cli: Cli, sides: Sides) -> None:
    # Given writes on both sides and the primary file saying PostgreSQL's are not here
    diverge(sides)
    after_outage(sides)

    # When the operator syncs from PostgreSQL
    result = sync(cli, sides, "--json")

    # Then the writes are here, the chain verified, and the unsynced mark is gone
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["chain_verified"] and report["changed"] > 0 and not report["dry_run"]
    assert report["tables"]["users"]["merged"] == 1 and len(report["flags_updated"]) == 3
    with sides.local() as s:
        assert "pg-user" in s.scalars(select(User.username)).all()
    state = primary_file.read(sides.settings.primary_state_file)
    assert state.backend == "sqlite" and state.unsynced_since is None
    assert state.synced_at is not None and state.synced_at > sides.synced_at.isoformat()
    assert "Database sync from postgresql into sqlite" in cli.log_file.read_text()

    # And a second run finds nothing to merge
    again = sync(cli, sides)
    assert again.exit_code == 0, again.output
    assert "nothing to merge" in again.stdout


def test_db_sync__dry_run__changes_nothing(cli: Cli, sides: Sides) -> None:
    # Given writes on both sides after an outage
    diverge(sides)
    state = after_outage(sides)
    before = snapshot(sides.local)

    # When the operator asks what a sync would do
    result = sync(cli, sides, "--dry-run")

    # Then it is said, and neither the database nor the primary file changed
    assert result.exit_code == 0, result.output
    assert "dry run" in result.stdout and "nothing was changed" in result.stdout
    assert snapshot(sides.local) == before
    assert primary_file.read(sides.settings.primary_state_file) == state


def test_db_sync__postgres_refuses_connections__exit_1_nothing_changed(
    cli: Cli, sides: Sides
) -> None:
    # Given PostgreSQL's writes, then PostgreSQL refusing connections
    diverge(sides)
    state = after_outage(sides)
    before = snapshot(sides.local)
    sides.origin_engine.dispose()
    admin_execute(f'ALTER DATABASE "{sides.pg_database}" ALLOW_CONNECTIONS false')
    admin_execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
        sides.pg_database,
    )

    # When the operator syncs
    result = sync(cli, sides)

    # Then it fails clearly (no traceback), and nothing changed
    assert result.exit_code == 1, result.output
    assert "cannot read the postgresql database" in result.stderr
    assert "nothing was changed" in result.stderr and "Traceback" not in result.output
    assert snapshot(sides.local) == before
    assert primary_file.read(sides.settings.primary_state_file) == state


def test_db_sync__from_the_primary__refused(initialized_cli: Cli) -> None:
    # Given SQLite as the primary, When asked to sync from SQLite
    result = initialized_cli("db", "sync", "--from", "sqlite")

    # Then it is refused with what to do instead
    assert result.exit_code == 2
    assert "the sqlite database is the primary" in result.stderr
    assert "--from postgresql" in result.stderr


def test_db_sync__without_postgres_url__exit_2(initialized_cli: Cli) -> None:
    # Given no PCM_POSTGRES_URL, When asked to sync from PostgreSQL
    result = initialized_cli("db", "sync", "--from", "postgresql")

    # Then it says what is missing
    assert result.exit_code == 2
    assert "PCM_POSTGRES_URL is not set" in result.stderr
