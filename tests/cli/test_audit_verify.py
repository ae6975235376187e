"""The audit chain through the CLI (server down, in-process): changes made by `pcm-ops flags`
are keyed and checkpointed, `pcm-ops db verify` and `pcm-ops verify` catch a truncation the
database alone hides, and a database restored from a backup is not mistaken for tampering."""

from __future__ import annotations

import json
import sqlite3
import stat

from tests.cli.conftest import Cli

CSRF = "csrf_tokens_enabled"
DATABASE = "Database integrity is maintained"


def change_flags(cli: Cli, n: int) -> None:
    for i in range(n):
        verb = "disable" if i % 2 == 0 else "enable"
        result = cli("flags", verb, CSRF)
        assert result.exit_code == 0, result.output


def truncate_to(cli: Cli, events: int) -> None:
    """Delete the newest events and make the store's count and head agree (raw SQL)."""
    with sqlite3.connect(cli.db) as conn:
        conn.execute("DELETE FROM flag_audit_events WHERE id > ?", (events,))
        conn.execute(
            "UPDATE flag_store SET audit_count = ?,"
            " audit_head = (SELECT hash FROM flag_audit_events WHERE id = ?) WHERE id = 1",
            (events, events),
        )


def live_verify(cli: Cli) -> tuple[int, dict[str, object]]:
    result = cli("db", "verify", "--json")
    return result.exit_code, json.loads(result.stdout)


def test_db_verify__cli_changes__keyed_checkpointed_and_intact(initialized_cli: Cli) -> None:
    cli = initialized_cli
    change_flags(cli, 3)
    code, out = live_verify(cli)
    assert code == 0, out
    assert out["audit_chain"] == "3 events, intact"
    assert any("HMAC-SHA256" in str(c) for c in out["audit_checked"])  # type: ignore[attr-defined]
    for name in ("audit_keys.json", "audit_checkpoints.jsonl"):
        assert stat.S_IMODE((cli.data_dir / name).stat().st_mode) == 0o600


def test_db_verify__newest_events_deleted_and_store_fixed__fails_naming_the_anchor(
    initialized_cli: Cli,
) -> None:
    cli = initialized_cli
    change_flags(cli, 4)
    truncate_to(cli, 2)
    code, out = live_verify(cli)
    assert code == 1
    assert out["audit_failed_anchors"] == ["checkpoints"]
    assert out["audit_first_bad_event"] == 3
    assert "saw 4 events, the table holds 2" in str(out["audit_chain"])
    # The runbook's checklist fails its database criterion the same way.
    checks = json.loads(cli("verify", "--json").stdout)["checks"]
    database = next(c for c in checks if c["criterion"] == DATABASE)
    assert database["status"] == "fail"
    assert "checkpoints" in database["detail"]


def test_db_verify__database_restored_from_an_older_backup__intact(initialized_cli: Cli) -> None:
    # Given a backup taken after two changes, and two more changes after it
    cli = initialized_cli
    change_flags(cli, 2)
    taken = cli("db", "backup", "--json")
    assert taken.exit_code == 0, taken.output
    change_flags(cli, 2)
    # When the backup is restored (the chain legitimately goes back to two events)
    restored = cli("db", "restore", json.loads(taken.stdout)["file"], "--json")
    assert restored.exit_code == 0, restored.output
    # Then verify holds the chain to the restored head, and keeps doing so after more changes
    code, out = live_verify(cli)
    assert (code, out["audit_chain"]) == (0, "2 events, intact"), out
    change_flags(cli, 1)
    code, out = live_verify(cli)
    assert (code, out["audit_chain"]) == (0, "3 events, intact"), out
    last = (cli.data_dir / "audit_checkpoints.jsonl").read_text().splitlines()[-2]
    assert json.loads(last)["kind"] == "restart"


def test_db_verify__database_reinitialised__intact_and_the_restart_is_shown(
    initialized_cli: Cli,
) -> None:
    # Given changes checkpointed for a database that is then deleted and made anew
    cli = initialized_cli
    change_flags(cli, 2)
    for suffix in ("", "-wal", "-shm"):
        (cli.data_dir / f"pcm_ops_tools.db{suffix}").unlink(missing_ok=True)
    assert cli("db", "init").exit_code == 0
    # When verified
    code, out = live_verify(cli)
    # Then the new, empty chain is intact, and the report says the checkpoints restarted
    assert (code, out["audit_chain"]) == (0, "0 events, intact"), out
    assert any("new database initialised" in str(c) for c in out["audit_checked"])  # type: ignore[attr-defined]
