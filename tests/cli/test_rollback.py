"""`pcm-ops rollback` with the server down and the database unreachable: journaled over the
last-known state file, which may be older than the database, and the output says so."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy.pool import NullPool

from backend.db.session import make_engine, session_factory
from backend.flags import service
from backend.flags.models import FlagRow
from tests.cli.conftest import Cli

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
