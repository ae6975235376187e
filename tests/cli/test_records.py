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
    assert "  csrf_tokens_enabled: on -> off" in shown["first"].output
    assert "  none: every flag was already at its rollback value" in shown["again"].output
    assert f"  database restored from {backup['file']}" in shown["restore"].output
    as_json = json.loads(cli("records", "show", str(first["record_id"]), "--json").stdout)
    assert {"flag": "csrf_tokens_enabled", "from": True, "to": False} in as_json["changes"]
