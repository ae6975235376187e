"""Rollback records in the runbook's words: the "Rollback Log Entry" and the "Internal
Communication" message, rendered from a record (shared by the API, the CLI and the console)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from backend.flags.models import RollbackAcknowledgement, RollbackRecord


def record_as_dict(r: RollbackRecord) -> dict[str, Any]:
    """A record in the shape GET /api/rollback-records/{id} returns."""
    return {
        "id": r.id,
        "timestamp": r.started_at.isoformat(),
        "feature": r.feature,
        "trigger": r.trigger,
        "method": r.method,
        "actor": r.actor,
        "duration_ms": r.duration_ms,
        "verification": r.verification,
        "changes": r.changes,
        "version": r.version,
        "acknowledged": acknowledgement_as_dict(r.acknowledgement),
    }


def acknowledgement_as_dict(a: RollbackAcknowledgement | None) -> dict[str, Any] | None:
    """Who said they saw a rollback, when and how; None while nobody has."""
    if a is None:
        return None
    return {"by": a.actor, "at": a.at.isoformat(), "method": a.method}


def duration_text(ms: float) -> str:
    if ms < 1000:
        return f"{ms:.1f} ms"
    if ms < 60_000:
        return f"{ms / 1000:.1f} s"
    return f"{ms / 60_000:.1f} minutes"


def log_entry(r: Mapping[str, Any]) -> str:
    """The runbook's "Rollback Log Entry Template", filled in."""
    return (
        f"[{r['timestamp']}] ROLLBACK INITIATED\n"
        f"Feature: {r['feature']}\n"
        f"Trigger: {r['trigger'] or '(no reason given)'}\n"
        f"Method: {r['method']}\n"
        f"Duration: {duration_text(float(r['duration_ms']))}\n"
        f"Verification: {r['verification']}"
    )


def change_lines(r: Mapping[str, Any]) -> list[str]:
    """What a record changed, a line each, in words: a flag's before and after, what a
    database restore swapped, where a git rollback went."""
    changes: list[dict[str, Any]] = list(r["changes"] or [])
    if not changes:
        if r["method"] == "emergency" or r["feature"] == "ALL":
            return ["none: every flag was already at its rollback value"]
        return ["none"]
    lines: list[str] = []
    for c in changes:
        if "flag" in c:
            lines.append(f"{c['flag']}: {_onoff(c.get('from'))} -> {_onoff(c.get('to'))}")
        elif "restored_from" in c:
            saved = c.get("pre_restore_backup") or "nothing (not backed up first)"
            lines.append(f"database restored from {c['restored_from']}")
            lines.append(f"the database before it saved as {saved}")
            lines += [f"kept aside: {p}" for p in c.get("preserved") or []]
        elif "ref" in c:
            branch = f" ({c['from_branch']})" if c.get("from_branch") else ""
            lines.append(f"code from {str(c.get('from'))[:12]}{branch}")
            lines.append(f"to {c['ref']} ({str(c.get('to'))[:12]})")
            if c.get("stash"):
                lines.append(f"uncommitted work stashed as {str(c['stash'])[:12]}")
        else:
            lines += [f"{key}: {value}" for key, value in c.items()]
    return lines


def _onoff(value: object) -> str:
    return "on" if value is True else "off" if value is False else str(value)


def action_text(r: Mapping[str, Any]) -> str:
    """What the rollback did, in one sentence, for flags, database restores and git."""
    changes: list[dict[str, Any]] = list(r["changes"] or [])
    flags = [c["flag"] for c in changes if "flag" in c]
    method = r["method"]
    if method == "emergency":
        changed = f"{len(flags)} changed: {', '.join(flags)}" if flags else "none had to change"
        return f"Emergency rollback: every feature flag set to its rollback value ({changed})"
    if method == "database" and changes:
        c = changes[0]
        return (
            f"Database restored from {c.get('restored_from')} "
            f"(current database first saved as {c.get('pre_restore_backup') or 'nothing'})"
        )
    if method == "git" and changes:
        c = changes[0]
        stash = f"; uncommitted work stashed ({c['stash']})" if c.get("stash") else ""
        target = f"{c.get('ref')} ({c.get('to')})"
        return f"Code rolled back with git from {c.get('from')} to {target}{stash}"
    if flags:
        return f"Feature flag(s) set to their rollback value: {', '.join(flags)}"
    return f"Rollback of {r['feature']} via {method} (nothing had to change)"


def communication(
    r: Mapping[str, Any], *, status: str, impact: str, next_steps: str, users: str
) -> str:
    """The runbook's "Internal Communication" message for one record; `status` is the
    system's state now, as the caller measured it."""
    return (
        f"SUBJECT: [URGENT] PCM-Ops Tools Rollback - {r['feature']}\n\n"
        f"ISSUE: {r['trigger'] or '[Brief description of the problem]'}\n"
        f"IMPACT: {impact}\n"
        f"ACTION: {action_text(r)}\n"
        f"STATUS: {status}\n"
        f"NEXT STEPS: {next_steps}\n\n"
        f"Time: {r['timestamp']}\n"
        f"Duration: {duration_text(float(r['duration_ms']))}\n"
        f"Affected Users: {users}"
    )
