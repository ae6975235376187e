"""`pcm-ops`: the operators' command line. Thin: parse, call the API or the flag runtime, print."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Annotated, Any, NoReturn

import typer
from rich.text import Text

from backend.cli import db as db_cmd
from backend.cli import db_sync  # noqa: F401  (registers `db sync` on db_app)
from backend.cli import server as server_cmd
from backend.cli.aws import aws_app
from backend.cli.client import Api, ApiError, ServerDown, cli_actor, local_runtime
from backend.cli.console import (
    BAD_INPUT,
    FAILED,
    NOT_FOUND,
    REFUSED,
    UNREACHABLE,
    JsonOpt,
    console,
    emit_json,
    err,
    fail,
    load_settings,
    print_table,
)
from backend.cli.gitops import rollback_git
from backend.cli.logs import logs as logs_cmd
from backend.cli.records import records_app
from backend.cli.snapshot import snapshot as snapshot_cmd
from backend.cli.users import token_app, user_app
from backend.cli.verify import verify as verify_cmd
from backend.core.config import Settings
from backend.flags import EnableRefused, FlagError, FlagNotFound, RollbackModeActive, current

app = typer.Typer(
    help="PCM-Ops Tools: feature flags, rollback and operations.",
    no_args_is_help=True,
    add_completion=False,
)
server_app = typer.Typer(help="Start, stop and inspect the server.", no_args_is_help=True)
flags_app = typer.Typer(help="Read and change feature flags.", no_args_is_help=True)
rollback_app = typer.Typer(help="Roll back flags, the database or the code.", no_args_is_help=True)
app.add_typer(server_app, name="server")
app.add_typer(flags_app, name="flags")
app.add_typer(rollback_app, name="rollback")
app.add_typer(user_app, name="user")
app.add_typer(token_app, name="token")
app.add_typer(db_cmd.db_app, name="db")
app.add_typer(records_app, name="records")
app.add_typer(aws_app, name="aws")
rollback_app.command("db")(db_cmd.rollback_db)
app.command("init-db")(db_cmd.db_init)
app.command("verify")(verify_cmd)
app.command("logs")(logs_cmd)
app.command("snapshot")(snapshot_cmd)
rollback_app.command("git")(rollback_git)

ReasonOpt = Annotated[str, typer.Option("--reason", "-r", help="Why (kept in the audit trail).")]
EXIT_FOR: dict[type[FlagError], int] = {
    FlagNotFound: NOT_FOUND,
    RollbackModeActive: REFUSED,
    EnableRefused: REFUSED,
}


def api_exit(exc: ApiError) -> NoReturn:
    code = {401: BAD_INPUT, 403: BAD_INPUT, 404: NOT_FOUND, 409: REFUSED, 422: BAD_INPUT}
    fail(exc.detail, UNREACHABLE if exc.status == 503 else code.get(exc.status, FAILED))


def flag_exit(exc: FlagError) -> NoReturn:
    for kind, code in EXIT_FOR.items():
        if isinstance(exc, kind):
            fail(str(exc), code)
    fail(str(exc), UNREACHABLE)


# -- server ------------------------------------------------------------------------------------
@server_app.command("start")
def server_start(
    timeout: Annotated[float, typer.Option(help="Seconds to wait for health.")] = 30.0,
) -> None:
    """Set up the database and start the server in the background."""
    s = load_settings()
    try:
        code = server_cmd.start(s, timeout=timeout)
    except FlagError as exc:
        fail(f"cannot start: {exc}", 2)
    raise typer.Exit(code)


@server_app.command("stop")
def server_stop(
    timeout: Annotated[float, typer.Option(help="Seconds before SIGKILL.")] = 10.0,
) -> None:
    """Stop the server gracefully (SIGTERM, then SIGKILL after the timeout)."""
    raise typer.Exit(server_cmd.stop(load_settings(), timeout=timeout))


@server_app.command("status")
def server_status() -> None:
    """Say whether the server runs (exit 3 when it does not)."""
    raise typer.Exit(server_cmd.status(load_settings()))


# -- flags -------------------------------------------------------------------------------------
def _print_flags(flags: list[dict[str, Any]]) -> None:
    rows = [
        (
            f["name"],
            Text("on", style="green") if f["enabled"] else Text("off", style="red"),
            "on" if f["stored_enabled"] else "off",
            f["source"],
            str(f["phase"]),
            "pending" if f["pending_restart"] else ("yes" if f["requires_restart"] else ""),
            f"{f['updated_at'][:16].replace('T', ' ')} {f['updated_by']}",
        )
        for f in flags
    ]
    headers = ("flag", "enabled", "stored", "source", "phase", "restart", "updated")
    print_table(headers, rows, ids={"flag"})


def _local_flags(s: Settings) -> dict[str, Any]:

    runtime = local_runtime(s)  # refreshed, or serving the last-known state when the DB is down
    snap = current()
    return {
        "version": snap.version,
        "rollback_mode": snap.rollback_mode,
        "journaled_rollbacks": list(snap.journaled),
        "flags": [f.as_dict() for f in snap.flags.values()],
        "via": "database" if runtime.last_error is None else "last-known state",
    }


@flags_app.command("list")
def flags_list(as_json: JsonOpt = False) -> None:
    """Every flag with its effective value and where it comes from."""
    s = load_settings()
    try:
        data = Api(s).json("GET", "/api/feature-flags")
    except ServerDown:
        err.print("[yellow]server not answering: reading the database directly[/yellow]")
        data = _local_flags(s)
    except ApiError as exc:
        api_exit(exc)
    if as_json:
        emit_json(data)
        return
    if data.get("rollback_mode"):
        console.print("[bold yellow]ROLLBACK MODE is on: flags serve their rollback values[/]")
    _print_flags(data["flags"])
    console.print(f"flags version {data['version']}")


@flags_app.command("get")
def flags_get(name: str, as_json: JsonOpt = False) -> None:
    """One flag."""
    s = load_settings()
    try:
        data = Api(s).json("GET", f"/api/feature-flags/{name}")
    except ServerDown:
        found = [f for f in _local_flags(s)["flags"] if f["name"] == name]
        if not found:
            fail(str(FlagNotFound(name)), 3)
        data = found[0]
    except ApiError as exc:
        api_exit(exc)
    if as_json:
        emit_json(data)
    else:
        _print_flags([data])


def _set(name: str, enabled: bool, reason: str, as_json: bool) -> None:
    s = load_settings()
    body = {"flag_name": name, "enabled": enabled, "reason": reason or None}
    try:
        data = Api(s).json("POST", "/api/feature-flags/toggle", json=body)
        via = "api"
    except ServerDown:
        err.print("[yellow]server not answering: changing the database directly[/yellow]")
        try:
            result = local_runtime(s).toggle(
                name, enabled, actor=cli_actor(), method="cli", reason=reason
            )
        except FlagError as exc:
            flag_exit(exc)

        data = {
            "flag": result.flag.as_dict(),
            "previous": result.old,
            "changed": result.changed,
            "message": result.message,
            "version": result.version,
            "journal_id": result.journal_id,
        }
        via = "journal" if result.journal_id else "database"
    except ApiError as exc:
        api_exit(exc)
    if as_json:
        emit_json({**data, "via": via})
        return
    flag = data["flag"]
    state = "enabled" if flag["enabled"] else "disabled"
    if data.get("changed", True) or data.get("journal_id"):
        console.print(
            f"Feature flag {name} is now {state} (stored {flag['stored_enabled']}, "
            f"source {flag['source']}, version {data['version']}, via {via})"
        )
    else:
        # Nothing was written: no audit event, no new version.
        console.print(f"Feature flag {data['message']} (version {data['version']}, via {via})")
    if data.get("journal_id"):
        console.print(JOURNALED.format(data["journal_id"]))
    if flag["pending_restart"]:
        console.print(f"[yellow]This flag takes effect on restart: {s.restart_command()}[/]")


@flags_app.command("enable")
def flags_enable(name: str, reason: ReasonOpt = "", as_json: JsonOpt = False) -> None:
    """Enable a flag."""
    _set(name, True, reason, as_json)


@flags_app.command("disable")
def flags_disable(name: str, reason: ReasonOpt = "", as_json: JsonOpt = False) -> None:
    """Disable a flag."""
    _set(name, False, reason, as_json)


# -- rollback ----------------------------------------------------------------------------------
JOURNALED = (
    "[yellow]The database is unreachable: journaled as {} in the local rollback journal; "
    "flags serve it now and it goes into the database (audit, record) when it is back.[/]"
)


def _rollback(s: Settings, names: list[str] | None, reason: str) -> tuple[dict[str, Any], str]:
    path = (
        "/api/feature-flags/emergency-rollback"
        if names is None
        else (f"/api/feature-flags/{names[0]}/rollback")
    )
    try:
        return Api(s, timeout=10).json("POST", path, json={"reason": reason or None}), "api"
    except ServerDown:
        err.print("[yellow]server not answering: rolling back in the database directly[/yellow]")

        try:
            result = local_runtime(s).rollback(
                names,
                actor=cli_actor(),
                method="emergency" if names is None else "feature_flag",
                reason=reason or ("emergency rollback" if names is None else "rollback"),
            )
        except FlagError as exc:
            flag_exit(exc)
        return result.as_dict(), "journal" if result.journal_id else "database"


def _what(data: dict[str, Any]) -> str:
    """Where a rollback is kept: its record, its journal entry, or nowhere (nothing changed)."""
    if data["record_id"] is not None:
        return f"record {data['record_id']}"
    if data.get("journal_id"):
        return f"journal entry {data['journal_id']}"
    return "nothing recorded"


def _print_rollback(data: dict[str, Any], via: str, restart: str) -> None:

    journaled = data.get("journal_id") is not None
    if journaled:
        # Worked out on the last-known state file, which may be older than the database: the
        # entry itself applies to its flags (every flag for ALL) whatever they are then.
        console.print(f"  {data.get('note') or 'journaled over the last-known state'}")
    for c in data["changed"]:
        console.print(
            f"  {c['flag']}: {'on' if c['from'] else 'off'} -> {'on' if c['to'] else 'off'}"
        )
    if not data["changed"]:
        if journaled:
            console.print(
                f"  no flag to change in last-known state version {data['version']};"
                " the entry still applies when replayed"
            )
        else:
            console.print("  nothing to change: every flag already had its rollback value")
    if journaled:
        console.print(JOURNALED.format(data["journal_id"]))
    console.print(
        f"{_what(data)}, verification {data['verification']}, {data['duration_ms']:.1f} ms,"
        f" via {via}"
    )
    if data["requires_restart"]:
        console.print(
            f"[yellow]Restart needed for: {', '.join(data['requires_restart'])} ({restart})[/]"
        )


@rollback_app.command("emergency")
def rollback_emergency(reason: ReasonOpt = "", as_json: JsonOpt = False) -> None:
    """Every flag to its rollback value in one transaction."""
    s = load_settings()
    data, via = _rollback(s, None, reason)
    if as_json:
        emit_json({**data, "via": via})
    else:
        console.print("[bold red]EMERGENCY ROLLBACK[/]")
        _print_rollback(data, via, s.restart_command())
    raise typer.Exit(0 if data["verification"] in ("success", "journaled") else 1)


@rollback_app.command("flag")
def rollback_flag(name: str, reason: ReasonOpt = "", as_json: JsonOpt = False) -> None:
    """One flag to its rollback value, verified by reading it back, then a health check.
    A flag at its rollback value already is left alone: nothing is recorded."""
    s = load_settings()
    began = datetime.now().astimezone()
    try:
        # First, so that an unknown flag fails before anything is printed.
        data, via = _rollback(s, [name], reason)
    except ApiError as exc:
        api_exit(exc)
    noop = bool(data.get("nothing_changed")) and not data.get("journal_id")
    verified = _verify_flag_off(s, name, via)
    healthy = _health_ok(s) if via == "api" else None
    if as_json:
        emit_json({**data, "via": via, "read_back_ok": verified, "healthy": healthy})
    else:
        console.print(
            f"✅ NOTHING TO ROLL BACK: {name}" if noop else f"🚨 EMERGENCY ROLLBACK: {name}"
        )
        console.print(f"Time: {began:%a %b %d %H:%M:%S %Z %Y}")
        if not verified:
            console.print("❌ ROLLBACK FAILED")
            console.print("Manual intervention required")
        elif noop:
            console.print(f"Feature {name} is already at its rollback value (disabled):")
            console.print(f"nothing changed, nothing recorded (via {via})")
        else:
            console.print("✅ ROLLBACK SUCCESSFUL")
            console.print(f"Feature {name} is now disabled ({_what(data)}, via {via})")
            if data.get("journal_id"):
                console.print(JOURNALED.format(data["journal_id"]))
                if data.get("note"):
                    console.print(data["note"])
    if not verified:
        raise typer.Exit(1)
    if not as_json:
        console.print("🧪 Testing critical paths...")
        if healthy is None:
            console.print("⚠️  Server not running: health check skipped")
        elif healthy:
            console.print("✅ Application health check passed")
        else:
            console.print("❌ Application health check failed")
            console.print("Consider emergency application restart")
    raise typer.Exit(0 if healthy is not False else 1)


def _verify_flag_off(s: Settings, name: str, via: str, wait: float = 2.0) -> bool:
    """Read the flag back (through the API when it answers) until it is off."""
    deadline = time.monotonic() + wait
    while True:
        try:
            if via == "api":
                enabled = Api(s).json("GET", f"/api/feature-flags/{name}")["enabled"]
            else:
                enabled = next(f["enabled"] for f in _local_flags(s)["flags"] if f["name"] == name)
        except (ServerDown, ApiError, StopIteration, FlagError):
            enabled = None
        if enabled is False:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)


def _health_ok(s: Settings) -> bool:
    try:
        return Api(s).request("GET", "/api/health").status_code == 200
    except ServerDown:
        return False


# -- checks ------------------------------------------------------------------------------------
CRITICAL_PATHS: list[tuple[str, str, int]] = [
    ("GET", "/api/health", 200),
    ("GET", "/api/feature-flags/health", 200),
    ("GET", "/api/feature-flags", 200),
    ("GET", "/api/providers", 200),
    ("GET", "/api/auth/aws-check-credentials", 200),
    ("GET", "/aws/tools", 200),
    ("GET", "/api/rollback-records", 200),
    ("GET", "/api/feature-flags/audit/verify", 200),
]


@app.command("check")
def check(as_json: JsonOpt = False) -> None:
    """Check the critical paths of the running server; exit 1 on any failure."""
    s = load_settings()
    api = Api(s)
    results: list[dict[str, Any]] = []

    def record(name: str, ok: bool, detail: str) -> None:
        results.append({"check": name, "ok": ok, "detail": detail})

    for method, path, expected in CRITICAL_PATHS:
        started = time.perf_counter()
        try:
            response = api.request(method, path)
        except ServerDown as exc:
            record(f"{method} {path}", False, str(exc))
            continue
        ms = (time.perf_counter() - started) * 1000
        ok = response.status_code == expected and "x-flags-version" in response.headers
        record(f"{method} {path}", ok, f"HTTP {response.status_code} in {ms:.0f} ms")
    try:
        chain = api.json("GET", "/api/feature-flags/audit/verify")
        record("audit chain intact", bool(chain.get("ok")), f"{chain.get('events')} events")
    except (ServerDown, ApiError) as exc:
        record("audit chain intact", False, str(exc))
    try:
        anon = Api(s)
        anon.http.headers.pop("Authorization", None)
        status = anon.request("POST", "/api/feature-flags/emergency-rollback").status_code
        record("rollback refused without auth", status == 401, f"HTTP {status}")
    except ServerDown as exc:
        record("rollback refused without auth", False, str(exc))
    failed = [r for r in results if not r["ok"]]
    if as_json:
        emit_json({"ok": not failed, "checks": results})
    else:
        for r in results:
            console.print(f"{'✅' if r['ok'] else '❌'} {r['check']}: {r['detail']}")
        console.print(f"{len(results) - len(failed)}/{len(results)} critical paths passed")
    raise typer.Exit(1 if failed else 0)


def main() -> None:
    app()
