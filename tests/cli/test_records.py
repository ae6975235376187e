"""`pcm-ops records show`: a record in words (the runbook's log entry and what changed)."""

from __future__ import annotations

import json

from tests.cli.conftest import Cli


def test_records_show__flags_restore_and_a_rollback_with_nothing_to_do__read_as_text(
    initialized_cli: Cli,
) -> None:
    cli = initialized_cli
    # Given an emergency rollback, one that found nothing to change, and a database restore
    first = json.loads(cli("rollback", "emergency", "--reason", "INC-1", "--json").stdout)
    again = json.loads(cli("rollback", "emergency", "--json").stdout)
    backup = json.loads(cli("db", "backup", "--json").stdout)
    restored = json.loads(cli("db", "restore", backup["file"], "--json").stdout)
    # When each is shown
    shown = {
        name: cli("records", "show", str(record_id))
        for name, record_id in (
            ("first", first["record_id"]),
            ("again", again["record_id"]),
            ("restore", restored["record_id"]),
        )
    }
    # Then each reads as the runbook's entry plus its changes in words, no Python repr
    for result in shown.values():
        assert result.exit_code == 0, result.output
        assert "ROLLBACK INITIATED" in result.output and "Changes:" in result.output
        assert "{" not in result.output and "'" not in result.output
    assert "Trigger: INC-1" in shown["first"].output
    assert (
        f"Not acknowledged yet: pcm-ops records ack {first['record_id']}" in shown["first"].output
    )
    assert "  csrf_tokens_enabled: on -> off" in shown["first"].output
    assert "  none: every flag was already at its rollback value" in shown["again"].output
    assert f"  database restored from {backup['file']}" in shown["restore"].output
    as_json = json.loads(cli("records", "show", str(first["record_id"]), "--json").stdout)
    assert {"flag": "csrf_tokens_enabled", "from": True, "to": False} in as_json["changes"]


def test_records_ack__an_emergency_rollback__is_acknowledged_once_and_shows_who(
    initialized_cli: Cli,
) -> None:
    cli = initialized_cli
    # Given an emergency rollback nobody has acknowledged
    record_id = json.loads(cli("rollback", "emergency", "--json").stdout)["record_id"]
    # When an operator acknowledges it from the terminal, twice
    first = cli("records", "ack", str(record_id))
    second = json.loads(cli("records", "ack", str(record_id), "--json").stdout)
    # Then it is stored once, by this user via the CLI, and the record says so
    assert first.exit_code == 0, first.output
    assert f"Rollback record {record_id} acknowledged by cli:" in first.output
    assert second["already_acknowledged"] is True and second["method"] == "cli"
    shown = json.loads(cli("records", "show", str(record_id), "--json").stdout)
    assert shown["acknowledged"]["by"] == second["by"]
    assert f"Acknowledged by {second['by']}" in cli("records", "show", str(record_id)).output


def test_records_ack__an_unknown_record__says_so(initialized_cli: Cli) -> None:
    result = initialized_cli("records", "ack", "999")
    assert result.exit_code != 0
    assert "no rollback record 999" in result.output
