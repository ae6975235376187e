"""`pcm-ops rollback` with the server down and the database unreachable: journaled over the
last-known state file, which may be older than the database, and the output says so."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from sqlalchemy.pool import NullPool

from backend.db.session import make_engine, session_factory
from backend.flags import service
from backend.flags.models import FlagRow
from tests.cli.conftest import Cli, Server

CSRF = "csrf_tokens_enabled"
XSS = "xss_protection_enabled"


def test_rollback_emergency__offline_over_a_lagging_state_file__names_its_version_and_all(
    cli: Cli, tmp_path: Path
) -> None:
    # Given a database in its own directory (so that it can be taken away) ...
    directory = tmp_path / "db"
    directory.mkdir()
    url = f"sqlite:///{directory}/pcm.db"
    env = {"DATABASE_URL": url}
    assert cli("db", "init", extra_env=env).exit_code == 0
    # ... a last-known state file saved with every flag at its rollback value ...
    first = cli("rollback", "emergency", "--json", extra_env=env)
    assert first.exit_code == 0, first.output
    saved = json.loads((cli.data_dir / "flags_last_known.json").read_text())["version"]
    # ... and two flags enabled since by a writer that left the file behind
    engine = make_engine(url, poolclass=NullPool)
    with session_factory(engine).begin() as s:
        service.set_flag(s, name=CSRF, enabled=True, actor="elsewhere", method="api")
        service.set_flag(s, name=XSS, enabled=True, actor="elsewhere", method="api")
    engine.dispose()

    # When the database is unreachable and an emergency rollback is run
    away = directory.rename(tmp_path / "db-away")
    result = cli("rollback", "emergency", "--reason", "db down", extra_env=env)

    # Then the output names the state it worked on and what the entry will do
    assert result.exit_code == 0, result.output
    assert (
        f"journaled over last-known state version {saved} (may be older than the database)"
        in result.output
    )
    assert "applies to every flag (ALL) when replayed" in result.output
    assert "nothing to change" not in result.output
    assert "journaled as j-" in result.output

    # And once the database is back, the entry applies to every flag, the two included
    away.rename(directory)
    listed = cli("flags", "list", "--json", extra_env=env)
    assert listed.exit_code == 0, listed.output
    engine = make_engine(url, poolclass=NullPool)
    with session_factory(engine)() as s:
        assert s.get(FlagRow, CSRF).enabled is False  # type: ignore[union-attr]
        assert s.get(FlagRow, XSS).enabled is False  # type: ignore[union-attr]
    engine.dispose()


def test_rollback_emergency__json_offline__carries_the_last_known_version_and_note(
    cli: Cli, tmp_path: Path
) -> None:
    directory = tmp_path / "db"
    directory.mkdir()
    env = {"DATABASE_URL": f"sqlite:///{directory}/pcm.db"}
    assert cli("db", "init", extra_env=env).exit_code == 0
    assert cli("flags", "list", "--json", extra_env=env).exit_code == 0  # saves the state
    saved = json.loads((cli.data_dir / "flags_last_known.json").read_text())["version"]
    directory.rename(tmp_path / "db-away")

    result = cli("rollback", "emergency", "--json", extra_env=env)

    assert result.exit_code == 0, result.output
    data = json.loads(result.output[result.output.index("{") :])
    assert (data["verification"], data["last_known_version"]) == ("journaled", saved)
    assert "every flag (ALL)" in data["note"]


def audit_rows(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        return int(conn.execute("SELECT count(*) FROM flag_audit_events").fetchone()[0])


def records(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        return int(conn.execute("SELECT count(*) FROM rollback_records").fetchone()[0])


def test_rollback_flag__server_down__a_flag_at_its_rollback_value__says_so_and_records_nothing(
    initialized_cli: Cli,
) -> None:
    cli = initialized_cli
    # Given a flag rolled back from the shell (the server is down: the database directly)
    first = cli("rollback", "flag", XSS)
    assert first.exit_code == 0, first.output
    assert "EMERGENCY ROLLBACK: " in first.output and "ROLLBACK SUCCESSFUL" in first.output
    events, kept = audit_rows(cli.db), records(cli.db)
    # When it is rolled back again, and disabled again
    again = cli("rollback", "flag", XSS)
    disabled = cli("flags", "disable", XSS, "--json")
    # Then both say nothing changed, print no rollback banner, and record nothing
    assert again.exit_code == 0, again.output
    assert f"NOTHING TO ROLL BACK: {XSS}" in again.output
    assert "already at its rollback value" in again.output
    assert "nothing changed, nothing recorded" in again.output
    assert "EMERGENCY ROLLBACK" not in again.output and "SUCCESSFUL" not in again.output
    assert json.loads(disabled.stdout)["changed"] is False
    assert "already at its rollback value" in json.loads(disabled.stdout)["message"]
    assert (audit_rows(cli.db), records(cli.db)) == (events, kept)


def test_rollback_flag__unknown_flag__fails_before_any_banner(initialized_cli: Cli) -> None:
    result = initialized_cli("rollback", "flag", "no_such_flag")
    assert result.exit_code == 3
    assert "unknown feature flag" in result.output
    assert "ROLLBACK" not in result.output and "Time:" not in result.output


def test_quick_rollback__server_up__twice__the_second_says_nothing_changed(
    server: Server,
) -> None:
    # Given a flag rolled back with the runbook's script
    first = server.run("./quick-rollback.sh", "thread_safe_sessions")
    assert first.returncode == 0, first.stdout + first.stderr
    assert "EMERGENCY ROLLBACK: thread_safe_sessions" in first.stdout
    with server.client() as c:
        audited = c.get("/api/feature-flags/audit").json()["total"]
        kept = len(c.get("/api/rollback-records").json()["items"])
        version = c.get("/api/feature-flags").json()["version"]
    # When it is run again
    again = server.run("./quick-rollback.sh", "thread_safe_sessions")
    # Then it says so, still checks health, and nothing is recorded
    assert again.returncode == 0, again.stdout + again.stderr
    assert "NOTHING TO ROLL BACK: thread_safe_sessions" in again.stdout
    assert "already at its rollback value" in again.stdout
    assert "ROLLBACK SUCCESSFUL" not in again.stdout and "EMERGENCY" not in again.stdout
    assert "health check passed" in again.stdout
    with server.client() as c:
        assert c.get("/api/feature-flags/audit").json()["total"] == audited
        assert len(c.get("/api/rollback-records").json()["items"]) == kept
        assert c.get("/api/feature-flags").json()["version"] == version
    # And an unknown flag fails before any banner
    unknown = server.run("./quick-rollback.sh", "no_such_flag")
    assert unknown.returncode == 3 and "unknown feature flag" in unknown.stderr
    assert unknown.stdout == ""
