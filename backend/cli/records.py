"""`pcm-ops records list|show|report|ack`: rollback records in the runbook's "Rollback Log Entry"
form, and its "Internal Communication" message filled in from a record."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from sqlalchemy import func, select

from backend.cli.client import Api, ApiError, ServerDown, cli_actor, open_database
from backend.cli.console import (
    NOT_FOUND,
    UNREACHABLE,
    JsonOpt,
    console,
    emit_json,
    err,
    fail,
    load_settings,
    print_table,
)
from backend.core.config import Settings
from backend.db.session import engine_for, session_factory
from backend.flags import reports
from backend.flags.acknowledgements import acknowledge
from backend.flags.errors import RecordNotFound
from backend.flags.models import FlagStoreRow, RollbackRecord
from backend.flags.reports import duration_text, log_entry, record_as_dict

records_app = typer.Typer(help="Rollback records and the runbook's messages.", no_args_is_help=True)


def add_record(
    settings: Settings,
    *,
    feature: str,
    trigger: str,
    method: str,
    duration_ms: float,
    verification: str,
    changes: list[dict[str, object]],
) -> int:
    """Store a rollback record made outside the flag engine (database restore, git)."""
    engine = engine_for(settings, create=False)
    try:
        with session_factory(engine).begin() as s:
            version = s.scalar(select(FlagStoreRow.version).where(FlagStoreRow.id == 1)) or 0
            row = RollbackRecord(
                started_at=datetime.now(UTC),
                feature=feature[:100],
                trigger=trigger,
                method=method,
                actor=cli_actor(),
                duration_ms=duration_ms,
                verification=verification,
                changes=changes,
                version=version,
            )
            s.add(row)
            s.flush()
            return row.id
    finally:
        engine.dispose()


def status_text(settings: Settings, r: dict[str, Any]) -> str:
    try:
        health = Api(settings, timeout=3).request("GET", "/api/health").json()
        now = f"application {health.get('status')} (flags version {health.get('flags_version')})"
    except (ServerDown, ValueError):
        now = "server not answering"
    return f"rollback verification {r['verification']}; {now}"


def communication(
    settings: Settings, r: dict[str, Any], *, impact: str, next_steps: str, users: str
) -> str:
    """The runbook's Internal Communication message, with the server's state now."""
    return reports.communication(
        r, status=status_text(settings, r), impact=impact, next_steps=next_steps, users=users
    )


def _from_db(settings: Settings, record_id: int | None, limit: int) -> dict[str, Any]:
    engine = open_database(settings)
    try:
        with session_factory(engine)() as s:
            if record_id is not None:
                row = s.get(RollbackRecord, record_id)
                return {"items": [record_as_dict(row)] if row else []}
            total = s.scalar(select(func.count()).select_from(RollbackRecord)) or 0
            rows = s.scalars(select(RollbackRecord).order_by(RollbackRecord.id.desc()).limit(limit))
            return {"total": total, "items": [record_as_dict(r) for r in rows]}
    except Exception as exc:  # the database may be the thing that broke
        fail(f"cannot read rollback records: {exc}".splitlines()[0], UNREACHABLE)
    finally:
        engine.dispose()


def fetch(
    settings: Settings, record_id: int | None = None, limit: int = 50, *, quiet: bool = False
) -> list[dict[str, Any]]:
    """Records through the server, or from the database when it does not answer."""
    path = "/api/rollback-records" + (
        f"/{record_id}" if record_id is not None else f"?limit={limit}"
    )
    try:
        data = Api(settings).json("GET", path)
        return [data] if record_id is not None else list(data["items"])
    except ServerDown:
        if not quiet:
            err.print("[yellow]server not answering: reading the database directly[/yellow]")
    except ApiError as exc:
        if exc.status == 404:
            return []
        if not quiet:
            err.print(f"[yellow]server answered {exc}: reading the database directly[/yellow]")
    return list(_from_db(settings, record_id, limit)["items"])


def _one(settings: Settings, record_id: int) -> dict[str, Any]:
    found = fetch(settings, record_id)
    if not found:
        fail(f"no rollback record {record_id}", NOT_FOUND)
    return found[0]


@records_app.command("list")
def records_list(
    limit: Annotated[int, typer.Option(min=1, max=1000, help="How many, newest first.")] = 20,
    as_json: JsonOpt = False,
) -> None:
    """Rollback records, newest first."""
    items = fetch(load_settings(), limit=limit)
    if as_json:
        emit_json(items)
        return
    rows = [
        (
            str(r["id"]),
            r["timestamp"][:19].replace("T", " "),
            r["feature"],
            r["method"],
            r["trigger"],
            duration_text(r["duration_ms"]),
            r["verification"],
        )
        for r in items
    ]
    headers = ("id", "time", "feature", "method", "trigger", "duration", "verification")
    print_table(headers, rows, ids={"id", "feature"})


@records_app.command("show")
def records_show(record_id: int, as_json: JsonOpt = False) -> None:
    """One record as the runbook's Rollback Log Entry."""
    r = _one(load_settings(), record_id)
    if as_json:
        emit_json({**r, "log_entry": log_entry(r)})
        return
    console.print(log_entry(r), markup=False)
    console.print(f"Record: {r['id']} by {r['actor']} (flags version {r['version']})", markup=False)
    ack = r.get("acknowledged")
    if ack:
        console.print(
            f"Acknowledged by {ack['by']} at {ack['at']} (via {ack['method']})", markup=False
        )
    else:
        console.print(f"Not acknowledged yet: pcm-ops records ack {r['id']}", markup=False)
    console.print("Changes:")
    for line in reports.change_lines(r):
        console.print(f"  {line}", markup=False)


@records_app.command("report")
def records_report(
    record_id: int,
    impact: Annotated[
        str, typer.Option(help="IMPACT: who/what is affected.")
    ] = "[Who/what is affected]",
    next_steps: Annotated[str, typer.Option("--next", help="NEXT STEPS.")] = (
        "Root cause analysis; fix the issue and test it in staging before re-enabling"
    ),
    users: Annotated[str, typer.Option(help="Affected Users.")] = "[Estimate]",
    as_json: JsonOpt = False,
) -> None:
    """The runbook's Internal Communication message, filled in from a record."""
    s = load_settings()
    r = _one(s, record_id)
    text = communication(s, r, impact=impact, next_steps=next_steps, users=users)
    if as_json:
        emit_json({"record": r, "message": text})
    else:
        console.print(text, markup=False)


@records_app.command("ack")
def records_ack(record_id: int, as_json: JsonOpt = False) -> None:
    """Say you have seen a rollback (stored once: who, when); the console's banner goes."""
    s = load_settings()
    engine = open_database(s)
    try:
        done = acknowledge(
            session_factory(engine), record_id=record_id, actor=cli_actor(), method="cli"
        )
    except RecordNotFound:
        fail(f"no rollback record {record_id}", NOT_FOUND)
    except Exception as exc:  # the database may be the thing that broke
        fail(f"cannot acknowledge rollback record {record_id}: {exc}".splitlines()[0], UNREACHABLE)
    finally:
        engine.dispose()
    if as_json:
        emit_json(done.as_dict())
    elif done.new:
        console.print(f"Rollback record {record_id} acknowledged by {done.by}.", markup=False)
    else:
        console.print(
            f"Rollback record {record_id} was already acknowledged by {done.by} at {done.at}.",
            markup=False,
        )
