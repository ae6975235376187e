"""`pcm-ops db sync --from postgresql` after an outage: the SQLite file is the primary, the
writes made on PostgreSQL since the last sync come back (real SQLite file, real scratch
PostgreSQL database, the CLI run in-process)."""

from __future__ import annotations

import json
import time
from datetime import datetime

import httpx
from click.testing import Result
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from backend.core import primary_file
from backend.core.config import Settings
from backend.core.primary_file import PrimaryState
from backend.db.init_db import upgrade_schema
from backend.db.session import engine_for, make_engine, session_factory
from backend.flags.audit_anchor import AuditAnchor, bind
from backend.security.audit_keys import load_audit_keys
from backend.security.models import User
from backend.security.users import create_user
from tests.cli.conftest import Cli, Server, server
from tests.db.sync_sides import PASSWORD, Sides, copy_rows, diverge, sides, toggle
from tests.db.test_merge import snapshot
from tests.postgres import refuse_connections, scratch_database

__all__ = ["server", "sides"]


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
    assert state.synced_at is not None
    assert datetime.fromisoformat(state.synced_at) > sides.synced_at
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
    refuse_connections(sides.pg_database)

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


def test_db_sync__server_running_on_sqlite__serves_the_synced_flag(server: Server) -> None:
    # Given a server running on its SQLite file, and a PostgreSQL copy of it on which a flag
    # was switched off and a user added since (the writes made there before an outage)
    settings = Settings(data_dir=server.data_dir, log_dir=server.log_file.parent)
    with scratch_database("pcm_sync_live") as (_name, url):
        local, origin_engine = engine_for(settings, create=False), make_engine(url)
        try:
            upgrade_schema(origin_engine)
            copy_rows(local, origin_engine)
            origin = session_factory(origin_engine)
            bind(origin, AuditAnchor(load_audit_keys(settings), None))
            toggle(origin, "csrf_tokens_enabled", False, "alice")
            add_user(origin)
        finally:
            local.dispose()
            origin_engine.dispose()
        with server.client() as api:
            assert api.get("/api/feature-flags/csrf_tokens_enabled").json()["enabled"] is True

            # When the operator syncs while the server keeps running
            done = server.run(
                "./pcm-ops",
                "db",
                "sync",
                "--from",
                "postgresql",
                extra_env={"PCM_POSTGRES_URL": url},
            )

            # Then the server serves the synced flag, and its audit chain verifies
            assert done.returncode == 0, done.stdout + done.stderr
            assert served(api, "csrf_tokens_enabled") is False
            assert api.get("/api/feature-flags/audit/verify").json()["ok"] is True
            users = [u["username"] for u in api.get("/api/users").json()["items"]]
            assert "pg-user" in users


def served(api: httpx.Client, name: str, wait: float = 5.0) -> bool:
    """The flag as the server serves it, once it changed or `wait` seconds passed."""
    deadline = time.monotonic() + wait
    while True:
        enabled = bool(api.get(f"/api/feature-flags/{name}").json()["enabled"])
        if not enabled or time.monotonic() > deadline:
            return enabled
        time.sleep(0.05)


def add_user(sessions: sessionmaker[Session]) -> None:
    """A user written on PostgreSQL (through the app's own use case)."""
    with sessions.begin() as s:
        create_user(s, username="pg-user", password=PASSWORD, role="operator")


def test_db_sync__origin_without_schema__refused_exit_4(initialized_cli: Cli) -> None:
    # Given PCM_POSTGRES_URL naming a database nobody set up
    with scratch_database("pcm_sync_empty") as (_name, url):
        # When asked to sync from it
        result = initialized_cli(
            "db", "sync", "--from", "postgresql", extra_env={"PCM_POSTGRES_URL": url}
        )

    # Then it is refused with what to do, and the primary file is not touched
    assert result.exit_code == 4, result.output
    assert "schema is at nothing" in result.stderr and "pcm-ops db init" in result.stderr
    assert not (initialized_cli.data_dir / "pcm_ops_tools.primary.json").exists()
