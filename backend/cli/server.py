"""`pcm-ops server start|stop|status`: the process behind ./start.sh and ./stop.sh."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
from rich.console import Console
from rich.markup import escape
from sqlalchemy.exc import SQLAlchemyError

from backend.core import server_state
from backend.core.config import PROJECT_ROOT, Settings
from backend.core.filemodes import tighten_private_dirs
from backend.db.init_db import init_db
from backend.db.outage import first_line, unreachable
from backend.db.primary import Switch, ensure_primary, log_switch
from backend.db.session import database_missing, engine_for, session_factory
from backend.flags import FlagRuntime, snapshot
from backend.flags.last_known import load as load_last_known
from backend.metrics import multiproc

alive = server_state.alive  # kept here for the commands that import it from this module

console = Console(highlight=False, soft_wrap=True)


def read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def running_pid(settings: Settings) -> int | None:
    pid = read_pid(settings.pid_file)
    return pid if pid is not None and alive(pid) else None


def restart_settings(settings: Settings) -> Settings:
    """Settings that start the server again where it runs now (its host, port and workers,
    unless HOST, PORT or WORKERS are given): call before stopping it."""
    running = settings.running_server
    if running is None:
        return settings
    given = settings.model_fields_set
    keep = {k: getattr(running, k) for k in ("host", "port", "workers") if k not in given}
    return settings.model_copy(update=keep)


def port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1" if host in ("0.0.0.0", "") else host, port)) == 0


def validate_flags(settings: Settings, known: set[str] | None = None) -> None:
    """Fail before forking when FEATURE_FLAG_* names an unknown flag: one of the database or,
    while it is unreachable, one of the `known` flags (the last-known state)."""
    engine = engine_for(settings)
    try:
        runtime = FlagRuntime(
            session_factory(engine),
            rollback_mode=settings.rollback_mode,
            overrides=settings.flag_overrides,
        )
        if known is None:
            runtime.refresh(force=True)
        else:
            runtime.builder.check_overrides(known)
    finally:
        snapshot.reset()
        engine.dispose()


class Refused(Exception):
    """Start-up refused; the message says why and what to do, the code is the exit code."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def refuse_missing_database(settings: Settings) -> None:
    """A first setup creates the database; a data directory that had one (its admin token,
    backups, audit checkpoints or last-known flags are there) whose database file is gone is
    not silently given an empty one: that would hide the loss behind default flags."""
    path = database_missing(settings)
    if path is None or not path.parent.is_dir():  # an unmounted volume is an outage
        return
    traces = [
        p.name
        for p in (
            settings.admin_token_path,
            settings.backup_manifest,
            settings.audit_checkpoint_file,
            settings.state_file,
        )
        if p.exists()
    ]
    if traces:
        raise Refused(
            f"the database {path} is missing, but {path.parent} held one"
            f" ({', '.join(traces)}). Restore the latest backup: ./pcm-ops db restore FILE"
            " (./pcm-ops db list shows them), then ./start.sh; or, to start over with an"
            " empty database: ./pcm-ops db init, then ./start.sh",
            4,
        )


def prepare_database(settings: Settings) -> tuple[int, set[str]] | None:
    """Run init_db. When the database is unreachable (an outage, not wrong settings) and a
    last-known flag state exists, return its version and flags: the server then starts on it
    and runs init_db once the database answers. Raises Refused otherwise."""
    try:
        report = init_db(settings)
    except SQLAlchemyError as exc:
        problem = first_line(exc)
        if not unreachable(exc):
            raise Refused(f"the database set-up failed: {problem}", 1) from exc
        saved = load_last_known(settings.state_file)
        if saved is None:
            raise Refused(
                f"the database is unreachable ({problem}) and there is no last-known flag"
                f" state ({settings.state_file}) to serve until it answers: start the"
                " database first",
                5,
            ) from exc
        version, records = saved
        console.print(
            f"[yellow]The database is unreachable:[/yellow] {escape(problem)}\n"
            f"[yellow]Starting on the last-known flag state (version {version},"
            f" {settings.state_file}); rollbacks are journaled, and the migrations run"
            " once the database answers.[/yellow]"
        )
        return version, {r.name for r in records}
    if report.admin_token_created:
        console.print(f"Created an admin API token in {report.admin_token_path} (mode 0600).")
    for line in report.login_hint(settings.listen_url):
        console.print(line, markup=False)
    return None


def print_switch(switch: Switch) -> None:
    """Say which database the server starts on, and anything the operator must act on."""
    if switch.refused:
        console.print(f"[yellow]{escape(switch.log_line)}[/yellow]")
    else:
        console.print(switch.log_line, markup=False)
    if switch.warning:
        console.print(f"[yellow]Warning: {escape(switch.warning)}[/yellow]")


def wait_healthy(url: str, proc: subprocess.Popen[bytes], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=1.0) as http:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                return False
            with contextlib.suppress(httpx.HTTPError):
                if http.get(f"{url}/api/health").status_code in (200, 503):
                    return True
            time.sleep(0.1)
    return False


def start(settings: Settings, timeout: float = 30.0) -> int:
    pid = running_pid(settings)
    if pid is not None:
        running = settings.running_server
        url = running.url if running is not None else settings.base_url
        console.print(f"PCM-Ops Tools is already running (pid {pid}) at {url}")
        if running is not None and running.url != settings.listen_url:
            console.print(
                f"  (not at {settings.listen_url}: to move it, {running.restart_command()}"
                " with the new HOST/PORT)"
            )
        return 0
    if port_in_use(settings.host, settings.port):
        console.print(
            f"[red]Port {settings.port} is in use by another process; "
            "set PORT to use another one.[/red]"
        )
        return 1
    tighten_private_dirs(settings)  # left 0644/0755 by older versions
    switch = ensure_primary(settings)  # before init_db: that then runs on the new primary
    log_switch(switch)
    print_switch(switch)
    try:
        refuse_missing_database(settings)
        degraded = prepare_database(settings)
    except Refused as exc:
        console.print(f"[red]Cannot start:[/red] {escape(str(exc))}")
        return exc.code
    validate_flags(settings, None if degraded is None else degraded[1])
    env = dict(os.environ)
    # Every worker counts in the same files: /metrics adds up all of them, whoever answers.
    multiproc.prepare(settings.metrics_dir)
    env[multiproc.ENV] = str(settings.metrics_dir)
    env["PCM_PRIMARY_CHECKED"] = "1"  # decided above: the workers do not try again
    if degraded is not None:
        env["PCM_DATABASE_INIT_PENDING"] = "1"  # see Settings.database_init_pending
    console_log = settings.log_dir / "server.console.log"
    cmd = [
        sys.executable,
        "-m",
        "uvicorn",
        "backend.main:create_app",
        "--factory",
        "--host",
        settings.host,
        "--port",
        str(settings.port),
        "--workers",
        str(settings.workers),
        "--no-access-log",
        # X-Forwarded-* are believed only from PCM_TRUSTED_PROXIES, by create_app; uvicorn's
        # default would believe them from 127.0.0.1.
        "--no-proxy-headers",
        "--timeout-graceful-shutdown",
        "5",
    ]
    with console_log.open("ab") as out:
        proc = subprocess.Popen(
            cmd,
            cwd=PROJECT_ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env=env,
        )
    settings.pid_file.write_text(f"{proc.pid}\n")
    server_state.write(
        settings.server_state_file,
        server_state.ServerState(
            pid=proc.pid,
            host=settings.host,
            port=settings.port,
            workers=settings.workers,
            started_at=datetime.now(UTC).isoformat(timespec="seconds"),
        ),
    )
    url = settings.listen_url
    if not wait_healthy(url, proc, timeout):
        console.print("[red]PCM-Ops Tools did not come up.[/red] Last lines of the console log:")
        with contextlib.suppress(OSError):
            for line in console_log.read_text(errors="replace").splitlines()[-15:]:
                console.print(f"  {line}", markup=False)
        stop(settings, quiet=True)
        return 1
    mode = " [yellow](ROLLBACK MODE: every flag serves its rollback value)[/yellow]"
    console.print(
        f"PCM-Ops Tools is running (pid {proc.pid}, {settings.workers} worker(s))"
        f"{mode if settings.rollback_mode else ''}"
    )
    if degraded is not None:
        console.print(
            f"  [yellow]DEGRADED: database unreachable, serving last-known state version"
            f" {degraded[0]}, migrations pending (see /api/health)[/yellow]"
        )
    console.print(f"  URL:         {url}")
    console.print(f"  Log file:    {settings.log_file}")
    console.print(f"  Admin token: {settings.admin_token_path}")
    console.print(
        f'  Try: curl -H "Authorization: Bearer $(cat {settings.admin_token_path})" '
        f"{url}/api/feature-flags"
    )
    return 0


def stop(settings: Settings, timeout: float = 10.0, quiet: bool = False) -> int:
    pid = read_pid(settings.pid_file)
    if pid is None or not alive(pid):
        settings.pid_file.unlink(missing_ok=True)
        server_state.remove(settings.server_state_file)
        if not quiet:
            console.print("PCM-Ops Tools is not running.")
        return 0
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    except PermissionError:
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while alive(pid) and time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(pid, os.WNOHANG)
        time.sleep(0.05)
    forced = alive(pid)
    if forced:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
    settings.pid_file.unlink(missing_ok=True)
    server_state.remove(settings.server_state_file)
    if not quiet:
        how = f"killed after {timeout:.0f} s (SIGKILL)" if forced else "stopped gracefully"
        console.print(f"PCM-Ops Tools (pid {pid}) {how}; pid file removed.")
    return 0


def status(settings: Settings) -> int:
    pid = running_pid(settings)
    if pid is None:
        console.print("PCM-Ops Tools is not running.")
        return 3
    running = settings.running_server
    if running is None or running.pid != pid:  # started by an older version: no address kept
        console.print(f"PCM-Ops Tools is running (pid {pid}) at {settings.base_url}")
        return 0
    console.print(f"PCM-Ops Tools is running (pid {pid}) at {running.url}")
    console.print(f"  workers: {running.workers}, started {running.started_at}")
    return 0
