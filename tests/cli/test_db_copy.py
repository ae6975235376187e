"""`pcm-ops db copy` and `pcm-ops db status` on a real SQLite file and a real PostgreSQL
scratch database: what an operator types and reads."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from backend.core import primary_file
from backend.core.config import Settings
from tests.cli.conftest import Cli
from tests.db.filled import contents, fill, toggle
from tests.postgres import refuse_connections, scratch_database


@pytest.fixture
def pg() -> Iterator[tuple[str, str]]:
    with scratch_database("pcm_copy_cli") as found:
        yield found


def settings_of(cli: Cli, **fields: object) -> Settings:
    return Settings(data_dir=cli.data_dir, log_dir=cli.log_file.parent, **fields)  # type: ignore[arg-type]


def test_copy__without_postgres_url__exit_2_saying_what_to_set(initialized_cli: Cli) -> None:
    # When the copy runs with no PostgreSQL named
    result = initialized_cli("db", "copy", "--to", "postgresql")
    # Then it says what to set
    assert result.exit_code == 2
    assert "set PCM_POSTGRES_URL first" in result.output


def test_copy__with_database_url__refused_as_pinned(
    initialized_cli: Cli, pg: tuple[str, str]
) -> None:
    # When DATABASE_URL pins the database
    env = {"PCM_POSTGRES_URL": pg[1], "DATABASE_URL": f"sqlite:///{initialized_cli.db}"}
    result = initialized_cli("db", "copy", "--to", "postgresql", extra_env=env)
    # Then the copy is refused, saying why
    assert result.exit_code == 2
    assert "DATABASE_URL pins the database" in result.output


def test_copy__to_the_primary_itself__exit_2(initialized_cli: Cli, pg: tuple[str, str]) -> None:
    result = initialized_cli("db", "copy", "--to", "sqlite", extra_env={"PCM_POSTGRES_URL": pg[1]})
    assert result.exit_code == 2
    assert "the SQLite file is the primary already: copy it with --to postgresql" in result.output


def test_copy_to_postgresql__copies_verifies_and_status_shows_both_sides_equal(
    initialized_cli: Cli, pg: tuple[str, str]
) -> None:
    # Given a SQLite file in use
    cli, env = initialized_cli, {"PCM_POSTGRES_URL": pg[1]}
    fill(settings_of(cli), settings_of(cli).sqlite_url)
    events = len(contents(settings_of(cli).sqlite_url)["flag_audit_events"])
    # When it is copied to PostgreSQL
    result = cli("db", "copy", "--to", "postgresql", extra_env=env)
    # Then the summary shows the rows and the verified chain, and the primary is unchanged
    assert result.exit_code == 0, result.output
    assert "rows copied" in result.output
    assert f"audit chain verified ({events} events)" in result.output
    assert "flag_audit_events" in result.output
    state = primary_file.read(settings_of(cli).primary_state_file)
    assert state.backend == "sqlite" and state.synced_at is not None
    # and the status shows both sides reachable, at the same revision, with the same rows
    status = json.loads(cli("db", "status", "--json", extra_env=env).stdout)
    sqlite, postgres = status["sides"]["sqlite"], status["sides"]["postgresql"]
    assert status["primary"] == "sqlite"
    assert sqlite["reachable"] and postgres["reachable"]
    assert sqlite["revision"] == postgres["revision"]
    assert sqlite["counts"] == postgres["counts"] and sqlite["counts"]["users"] == 2
    assert sqlite["audit_head"] == postgres["audit_head"]
    assert sum(sqlite["only_here"].values()) == sum(postgres["only_here"].values()) == 0
    # and a second copy finds nothing to do
    again = json.loads(cli("db", "copy", "--to", "postgresql", "--json", extra_env=env).stdout)
    assert again["ok"] and again["mode"] == "nothing"


def test_copy__diverged_sides__exit_1_naming_the_sync(
    initialized_cli: Cli, pg: tuple[str, str]
) -> None:
    # Given sides that each hold a change the other lacks
    cli, env = initialized_cli, {"PCM_POSTGRES_URL": pg[1]}
    s = settings_of(cli)
    fill(s, s.sqlite_url)
    assert cli("db", "copy", "--to", "postgresql", extra_env=env).exit_code == 0
    toggle(s, pg[1], "csrf_tokens_enabled", True)
    toggle(s, s.sqlite_url, "xss_protection_enabled", True)
    # When the status is asked and the copy is tried
    status = cli("db", "status", extra_env=env)
    result = cli("db", "copy", "--to", "postgresql", extra_env=env)
    # Then the status says what each side lacks, and the copy is refused with the way out
    assert "PostgreSQL holds 1 change(s) the other side lacks" in status.output
    assert "the SQLite file holds 1 change(s) the other side lacks" in status.output
    assert result.exit_code == 1
    assert "PostgreSQL holds 1 change(s) not in the SQLite file" in result.output
    assert "pcm-ops db sync --from postgresql" in result.output


def test_copy_to_sqlite__from_postgresql_primary__keeps_the_old_file_as_a_listed_backup(
    initialized_cli: Cli, pg: tuple[str, str]
) -> None:
    # Given PostgreSQL as the primary, ahead of the SQLite file
    cli, env = initialized_cli, {"PCM_POSTGRES_URL": pg[1]}
    s = settings_of(cli)
    fill(s, s.sqlite_url)
    assert cli("db", "copy", "--to", "postgresql", extra_env=env).exit_code == 0
    primary_file.write(s.primary_state_file, primary_file.PrimaryState(backend="postgresql"))
    toggle(s, pg[1], "csrf_tokens_enabled", True)
    events = len(contents(pg[1])["flag_audit_events"])
    # When it is copied back to the file
    result = json.loads(cli("db", "copy", "--to", "sqlite", "--json", extra_env=env).stdout)
    # Then the file is replaced, verified, and the old one is a backup `db list` shows
    assert result["ok"] and result["mode"] == "copied" and result["audit_verified"]
    assert result["audit_events"] == events
    listed = json.loads(cli("db", "list", "--json", extra_env=env).stdout)
    assert [item["file"] for item in listed] == [result["backup"].rsplit("/", 1)[1]]
    assert primary_file.read(s.primary_state_file).backend == "postgresql"


def test_status__postgresql_refusing_connections__says_unreachable_exit_0(
    initialized_cli: Cli, pg: tuple[str, str]
) -> None:
    # Given PostgreSQL refusing connections
    name, url = pg
    refuse_connections(name)
    # When the status is asked
    result = initialized_cli("db", "status", extra_env={"PCM_POSTGRES_URL": url})
    # Then it answers, the SQLite side in full and PostgreSQL as unreachable
    assert result.exit_code == 0, result.output
    assert "unreachable" in result.output
    assert "primary: the SQLite file" in result.output
