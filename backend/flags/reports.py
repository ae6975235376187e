"""Rollback records in the runbook's words: the "Rollback Log Entry" and the "Internal
Communication" message, rendered from a record (shared by the CLI and the web console)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def duration_text(ms: float) -> str:
    if ms < 1000:
        return f"{ms:.1f} ms"
    if ms < 60_000:
        return f"{ms / 1000:.1f} s"
    return f"{ms / 60_000:.1f} minutes"


def changes_text(changes: Sequence[Mapping[str, Any]]) -> str:
    if not changes:
        return "no flag changed (every flag already had its rollback value)"
    return ", ".join(
        f"{c['flag']} {'on' if c['from'] else 'off'} -> {'on' if c['to'] else 'off'}"
        for c in changes
    )


def log_entry(record: Mapping[str, Any]) -> str:
    """The runbook's "Rollback Log Entry Template", filled in."""
    return (
        f"[{record['timestamp']}] ROLLBACK INITIATED\n"
        f"Feature: {record['feature']}\n"
        f"Trigger: {record['trigger'] or 'not given'}\n"
        f"Method: {record['method']}\n"
        f"Duration: {duration_text(float(record['duration_ms']))}\n"
        f"Verification: {record['verification']}"
    )


def communication(
    record: Mapping[str, Any],
    *,
    status: str,
    affected: str,
    restart_needed: Sequence[str] = (),
) -> str:
    """The runbook's "Internal Communication" message, filled in from a record.

    `status` is the system's state now (from a health check) and `affected` an estimate the
    caller can measure (e.g. active sessions, requests in the window)."""
    changes = record.get("changes") or []
    next_steps = ["root cause analysis of " + str(record["feature"])]
    if restart_needed:
        next_steps.insert(0, "restart to apply " + ", ".join(restart_needed))
    next_steps.append("fix, test in staging, re-enable behind the flag")
    return (
        f"SUBJECT: [URGENT] PCM-Ops Tools Rollback - {record['feature']}\n\n"
        f"ISSUE: {record['trigger'] or 'not given'}\n"
        f"IMPACT: behaviour behind {len(changes)} flag(s) switched to rollback values\n"
        f"ACTION: {record['method']} rollback by {record['actor']}: {changes_text(changes)}\n"
        f"STATUS: {status}; rollback verification {record['verification']}\n"
        f"NEXT STEPS: {'; '.join(next_steps)}\n\n"
        f"Time: {record['timestamp']}\n"
        f"Duration: {duration_text(float(record['duration_ms']))}\n"
        f"Affected Users: {affected}"
    )
