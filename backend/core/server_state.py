"""Where the running server listens: a small owner-only JSON file beside the pid file.

`pcm-ops server start` writes it when it starts the server and `server stop` removes it, so that
every other command (the CLI, ./quick-rollback.sh, ./tests/critical_path_test.sh, a second
./start.sh) reaches a server started with `PORT=8620 ./start.sh` without repeating PORT.
A file whose process is gone (a crash, a reboot) or runs something else is ignored.
Standard library only: the settings read it.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8500


def alive(pid: int) -> bool:
    """Whether process `pid` exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child still answers kill(0); treat it as gone.
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            return False
    return True


def serves_this_app(pid: int) -> bool:
    """Whether process `pid` runs the app (its command line names backend.main), so that a
    pid reused after a reboot by another program does not pass for the server. True where
    /proc cannot tell."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return True
    if cmdline:
        return b"backend.main" in cmdline
    # Empty: a kernel thread (no executable), or a process in the middle of execve, whose
    # command line the kernel publishes a moment after the parent's Popen returned.
    try:
        os.readlink(f"/proc/{pid}/exe")
    except FileNotFoundError:
        return False
    except OSError:
        return True
    return True


def url_for(host: str, port: int) -> str:
    """The URL a client on this machine uses for a server listening on host:port."""
    reachable = DEFAULT_HOST if host in ("0.0.0.0", "::", "") else host
    if ":" in reachable:  # an IPv6 address
        reachable = f"[{reachable}]"
    return f"http://{reachable}:{port}"


@dataclass(frozen=True)
class ServerState:
    """One running server: its process, address, workers and start time (ISO 8601, UTC)."""

    pid: int
    host: str
    port: int
    workers: int
    started_at: str

    @property
    def url(self) -> str:
        return url_for(self.host, self.port)

    def restart_command(self) -> str:
        """`./stop.sh && ./start.sh`, with the variables that bring it back on this address."""
        env = []
        if self.host != DEFAULT_HOST:
            env.append(f"HOST={self.host}")
        if self.port != DEFAULT_PORT:
            env.append(f"PORT={self.port}")
        if self.workers != 1:
            env.append(f"WORKERS={self.workers}")
        return "./stop.sh && " + " ".join([*env, "./start.sh"])


def write(path: Path, state: ServerState) -> None:
    """Write the state atomically, mode 0600."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(asdict(state), fh)
        fh.write("\n")
    os.replace(tmp, path)


def read(path: Path) -> ServerState | None:
    """The recorded server when its process still runs; None when there is none, the file is
    unreadable or stale (its process is gone)."""
    try:
        raw = json.loads(path.read_text())
        state = ServerState(
            pid=int(raw["pid"]),
            host=str(raw["host"]),
            port=int(raw["port"]),
            workers=int(raw.get("workers", 1)),
            started_at=str(raw.get("started_at", "")),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if state.pid <= 0 or not alive(state.pid) or not serves_this_app(state.pid):
        return None
    return state


def remove(path: Path) -> None:
    path.unlink(missing_ok=True)
