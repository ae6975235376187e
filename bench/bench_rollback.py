"""Emergency rollback against a real server: request-to-response time, and propagation to workers.

    python bench/bench_rollback.py [--quick] [--runs N] [--flags 9,1000] [--workers 1,4]

For every flag count (9 = the built-in flags; 1000 = those plus 991 created with
backend.flags.service.create_flag in one transaction) a fresh data directory is prepared with
`python backend/db/init_db.py` (env PCM_DATA_DIR / PCM_LOG_DIR), then for every worker count a
real server is started exactly as in production:

    <python> -m uvicorn backend.main:create_app --factory --host 127.0.0.1 --port <free> --workers N

Each run:
 1. re-enable: one transaction in this process sets every flag that was on after set-up back on
    (UPDATE) and bumps the store version with backend.flags.service.lock_store, so the servers
    notice; then wait until every worker serves that version, and let the server idle briefly;
 2. POST /api/feature-flags/emergency-rollback (Bearer admin token, fresh TCP connection, like
    curl or the CLI at 3 a.m.), timed from before connect to the last byte of the response; the
    response must report every enabled flag as changed (8 of 9, 999 of 1000);
 3. (WORKERS > 1) propagation: from the moment the response has arrived, probe rounds of K fresh
    connections (all sent at once) to GET /api/feature-flags/health until every worker has been
    seen serving the new version and the last R rounds returned only the new version.

Workers are told apart from the outside, without adding anything to the server: every probe
connection is kept open until its response is read, then its server-side socket is looked up in
/proc/net/tcp and the worker owning it is found through /proc/<pid>/fd (Linux only). Three
propagation figures come out of the same probes:

* "server clock": each response of /api/feature-flags/health carries snapshot_age_seconds
  (ms resolution); CLOCK_MONOTONIC is shared by all processes on the machine, so
  publish time = response time - age. Propagation = latest worker's publish time - response
  time of the rollback (0 when every worker had it before the response arrived). Most precise.
* "observed per worker": bounds from the probes alone, attributed to workers by pid: the
  upper bound is when the last worker was first seen with the new version, the lower bound when
  a worker was last seen with the old one (0 if never).
* "blind K x R": the method that needs no pid: the end of the first of R consecutive rounds in
  which all K fresh connections returned the new version. Its blind spot (a worker that no
  connection reached) is quantified: coverage = share of rounds whose K connections reached all
  workers, and "premature" = runs in which it declared success before the last worker switched.

Every process started here is stopped by its pid at the end (SIGTERM, then SIGKILL).
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import selectors
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (
    PROJECT_ROOT,
    code_note,
    machine_note,
    median,
    percentile,
    print_table,
    say,
)
from sqlalchemy import update

from backend.core.config import Settings
from backend.db.base import utcnow
from backend.db.session import make_engine, session_factory
from backend.flags.models import FlagRow
from backend.flags.registry import FlagDefinition, Risk
from backend.flags.service import create_flag, lock_store

ROLLBACK_PATH = "/api/feature-flags/emergency-rollback"
PROBE_PATH = "/api/feature-flags/health"
PROBE_REQUEST = (
    f"GET {PROBE_PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: keep-alive\r\n\r\n"
).encode()
LINGER_RST = struct.pack("ii", 1, 0)  # close with RST: no TIME_WAIT pile-up in /proc/net/tcp

now = time.monotonic  # CLOCK_MONOTONIC, the clock the server's snapshot ages are measured on


# --- set-up ------------------------------------------------------------------------------------
def server_env(data_dir: Path, log_dir: Path, database_url: str | None = None) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("FEATURE_FLAG_", "PCM_"))
        and k not in ("DATABASE_URL", "PORT", "WORKERS", "HOST")
    }
    env.update(PCM_DATA_DIR=str(data_dir), PCM_LOG_DIR=str(log_dir), PYTHONUNBUFFERED="1")
    if database_url:
        env["DATABASE_URL"] = database_url
    return env


@contextlib.contextmanager
def postgres_database(admin_url: str | None) -> Iterator[str | None]:
    """A scratch PostgreSQL database for one store (None: the store is a SQLite file)."""
    if admin_url is None:
        yield None
        return
    import psycopg

    name = f"pcm_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    base = admin_url.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclass
class Store:
    root: Path
    flags: int
    token: str
    enabled_after_setup: list[str]
    settings: Settings

    @property
    def env(self) -> dict[str, str]:
        return server_env(self.settings.data_dir, self.settings.log_dir, self.settings.database_url)


def prepare_store(
    root: Path, total_flags: int, python: str, database_url: str | None = None
) -> Store:
    data_dir, log_dir = root / "data", root / "logs"
    env = server_env(data_dir, log_dir, database_url)
    subprocess.run(
        [python, "backend/db/init_db.py"],
        cwd=PROJECT_ROOT,
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    settings = Settings(data_dir=data_dir, log_dir=log_dir, database_url=database_url)
    engine = make_engine(settings.effective_database_url)
    sessions = session_factory(engine)
    with sessions() as s:
        existing = s.query(FlagRow).count()
    extra = total_flags - existing
    if extra > 0:
        with sessions.begin() as s:
            for i in range(extra):
                create_flag(
                    s,
                    FlagDefinition(
                        name=f"bench_flag_{i:04d}",
                        description=f"benchmark flag {i}",
                        phase=3,
                        risk=Risk.LOW,
                        default=True,
                    ),
                    actor="bench",
                )
    with sessions() as s:
        rows = s.query(FlagRow).all()
        enabled = sorted(r.name for r in rows if r.enabled)
        count = len(rows)
    engine.dispose()
    if count != total_flags:
        raise SystemExit(f"expected {total_flags} flags in the store, found {count}")
    token = settings.admin_token_path.read_text().strip()
    return Store(root, total_flags, token, enabled, settings)


def bump_version(engine: Any) -> tuple[int, float]:
    """A change that rewrites every flag without turning any on or off: the store version
    moves and every row carries it, so every worker reloads every flag (as after a rollback)."""
    with session_factory(engine).begin() as s:
        version = lock_store(s).version
        s.execute(update(FlagRow).values(updated_by="bench-touch", version=version))
    return version, now()


def reenable(store: Store, engine: Any) -> tuple[int, float]:
    """Turn every flag that was on after set-up back on, and bump the version; returns the new
    version and the monotonic time of the commit."""
    sessions = session_factory(engine)
    with sessions.begin() as s:
        version = lock_store(s).version
        s.execute(
            update(FlagRow)
            .where(FlagRow.name.in_(store.enabled_after_setup))
            .values(enabled=True, updated_at=utcnow(), updated_by="bench-reenable", version=version)
        )
    return version, now()


# --- the server and its workers ------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _listen_inode(port: int) -> str | None:
    needle = f":{port:04X}"
    with open("/proc/net/tcp") as fh:
        next(fh)
        for line in fh:
            parts = line.split()
            if parts[1].endswith(needle) and parts[3] == "0A":  # 0A = LISTEN
                return parts[9]
    return None


def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    fd_dir = f"/proc/{pid}/fd"
    with contextlib.suppress(OSError):
        for fd in os.listdir(fd_dir):
            with contextlib.suppress(OSError):
                link = os.readlink(f"{fd_dir}/{fd}")
                if link.startswith("socket:["):
                    inodes.add(link[8:-1])
    return inodes


def _children(pid: int) -> list[int]:
    kids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                stat = fh.read()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if ppid == pid:
            kids.append(int(entry))
    return kids


@dataclass
class Server:
    store: Store
    workers: int
    python: str
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    worker_pids: list[int] = field(default_factory=list)
    log_path: Path | None = None

    def start(self, timeout: float = 60.0) -> None:
        self.port = free_port()
        self.log_path = self.store.root / f"uvicorn-w{self.workers}-{self.port}.log"
        log = open(self.log_path, "wb")  # noqa: SIM115 - handed to the child
        self.proc = subprocess.Popen(
            [
                self.python,
                "-m",
                "uvicorn",
                "backend.main:create_app",
                "--factory",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--workers",
                str(self.workers),
            ],
            cwd=PROJECT_ROOT,
            env=self.store.env | {"PORT": str(self.port), "WORKERS": str(self.workers)},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                tail = self.log_path.read_text(errors="replace").splitlines()[-15:]
                raise SystemExit(
                    f"server exited with {self.proc.returncode}; last lines of its log:\n"
                    + "\n".join(tail)
                )
            inode = _listen_inode(self.port)
            if inode is not None:
                pids = [p for p in _children(self.proc.pid) if inode in _socket_inodes(p)]
                if self.workers == 1:
                    pids = [self.proc.pid]
                if len(pids) == self.workers:
                    self.worker_pids = sorted(pids)
                    try:
                        seen = {o.pid for o in probe_round(self, 16) if o.status == 200}
                    except OSError:
                        seen = set()
                    if seen >= set(self.worker_pids):
                        return
            time.sleep(0.1)
        raise SystemExit(f"server did not get ready in {timeout} s; see {self.log_path}")

    def live_workers(self) -> list[int]:
        if self.proc is None:
            return []
        if self.workers == 1:
            return [self.proc.pid] if self.proc.poll() is None else []
        inode = _listen_inode(self.port)
        return [p for p in _children(self.proc.pid) if inode in _socket_inodes(p)]

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            # Our own session (start_new_session): the group id is the pid we started.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=5)


# --- probing ------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Obs:
    t_send: float
    t_recv: float
    version: int
    age: float  # snapshot_age_seconds of the worker that answered
    pid: int  # worker that answered (0 if it could not be told)
    status: int

    def published_window(self) -> tuple[float, float]:
        """When the answering worker published the snapshot it served, on our clock: the server
        computed the age (rounded to 1 ms) somewhere between our send and our receive."""
        return self.t_send - self.age - 0.0005, self.t_recv - self.age + 0.0005


def _read_response(buf: bytes) -> tuple[int, dict[str, str], bytes] | None:
    head, sep, rest = buf.partition(b"\r\n\r\n")
    if not sep:
        return None
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    length = int(headers.get("content-length", "0"))
    if len(rest) < length:
        return None
    return status, headers, rest[:length]


def _owners(server: Server, client_ports: list[int]) -> dict[int, int]:
    """client port -> pid of the worker holding the server side of that connection."""
    local = f"0100007F:{server.port:04X}"
    wanted = {f"0100007F:{p:04X}": p for p in client_ports}
    inode_to_port: dict[str, int] = {}
    with open("/proc/net/tcp") as fh:
        next(fh)
        for line in fh:
            parts = line.split()
            if parts[1] == local and parts[2] in wanted:
                inode_to_port[parts[9]] = wanted[parts[2]]
    owners: dict[int, int] = {}
    for pid in server.worker_pids:
        for inode in _socket_inodes(pid) & inode_to_port.keys():
            owners[inode_to_port[inode]] = pid
    return owners


def probe_round(server: Server, k: int) -> list[Obs]:
    """K fresh connections, all requests sent before any response is read."""
    sel = selectors.DefaultSelector()
    pending: dict[socket.socket, tuple[float, bytearray, int]] = {}
    results: list[tuple[int, float, float, int, dict[str, str], bytes]] = []
    socks = []
    try:
        for _ in range(k):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_RST)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            socks.append(s)
            t_send = now()
            s.connect(("127.0.0.1", server.port))
            s.sendall(PROBE_REQUEST)
            s.setblocking(False)
            pending[s] = (t_send, bytearray(), s.getsockname()[1])
            sel.register(s, selectors.EVENT_READ)
        deadline = now() + 10
        while pending:
            if now() > deadline:
                raise TimeoutError("probe responses did not arrive within 10 s")
            for key, _ in sel.select(timeout=1):
                s = key.fileobj  # type: ignore[assignment]
                t_send, buf, cport = pending[s]
                chunk = s.recv(65536)
                if not chunk:
                    raise ConnectionError("server closed a probe connection early")
                buf += chunk
                parsed = _read_response(bytes(buf))
                if parsed is not None:
                    t_recv = now()
                    sel.unregister(s)
                    del pending[s]
                    status, headers, body = parsed
                    results.append((cport, t_send, t_recv, status, headers, body))
        owners = _owners(server, [r[0] for r in results])  # connections are still open here
    finally:
        sel.close()
        for s in socks:
            s.close()
    out = []
    for cport, t_send, t_recv, status, headers, body in results:
        data = json.loads(body)
        version = int(headers["x-flags-version"])
        out.append(
            Obs(
                t_send,
                t_recv,
                version,
                float(data["snapshot_age_seconds"]),
                owners.get(cport, 0),
                status,
            )
        )
    return out


@dataclass
class Propagation:
    """Probe results after one change, relative to `t0` (ms)."""

    server_clock_ms: float  # latest worker publish - t0, floored at 0
    observed_upper_ms: float
    observed_lower_ms: float
    blind_ms: float | None  # None: the blind criterion was never met
    blind_premature: bool
    rounds: int
    rounds_full_coverage: int
    unattributed: int
    per_worker_publish_ms: dict[int, float]


def watch_propagation(
    server: Server,
    target: int,
    t0: float,
    *,
    k: int,
    r: int,
    timeout: float,
    gap: float,
    start_delay: float = 0.0,
) -> Propagation:
    """Probe until every worker has been seen serving `target` and the last R rounds were all
    new; compute the figures described in the module docstring. With `start_delay`, probing
    starts late so that it cannot slow the propagation down: only the server-clock figure is
    meaningful then."""
    if start_delay:
        time.sleep(start_delay)
    workers = set(server.worker_pids)
    first_new: dict[int, float] = {}
    last_stale: dict[int, float] = {}
    window: dict[int, tuple[float, float]] = {}  # per worker: publish time lies in [lo, hi]
    streak = 0
    streak_start_end: float | None = None
    blind_at: float | None = None
    rounds = full = unattributed = 0
    deadline = now() + timeout
    while True:
        obs = probe_round(server, k)
        rounds += 1
        seen = {o.pid for o in obs}
        full += workers <= seen
        unattributed += sum(1 for o in obs if o.pid == 0)
        for o in obs:
            if o.version >= target:
                first_new.setdefault(o.pid, o.t_recv)
                if o.version == target and o.pid:
                    lo, hi = o.published_window()
                    old_lo, old_hi = window.get(o.pid, (lo, hi))
                    window[o.pid] = (max(lo, old_lo), min(hi, old_hi))
            else:
                last_stale[o.pid] = max(last_stale.get(o.pid, 0.0), o.t_send)
        round_end = max(o.t_recv for o in obs)
        if all(o.version >= target for o in obs):
            if streak == 0:
                streak_start_end = round_end
            streak += 1
            if streak >= r and blind_at is None:
                blind_at = streak_start_end
        else:
            streak = 0
        if workers <= first_new.keys() and streak >= r:
            break
        if now() > deadline:
            missing = sorted(workers - first_new.keys())
            raise TimeoutError(f"workers {missing} not seen with version {target} in {timeout} s")
        if gap:
            time.sleep(gap)
    publish = {p: (lo + hi) / 2 for p, (lo, hi) in window.items()}
    latest_publish = max(publish[p] for p in workers if p in publish) if publish else t0
    switched = max(latest_publish, max((last_stale.get(p, t0) for p in workers), default=t0))
    return Propagation(
        server_clock_ms=max(0.0, (latest_publish - t0) * 1000),
        observed_upper_ms=max(0.0, (max(first_new[p] for p in workers) - t0) * 1000),
        observed_lower_ms=max(0.0, (max(last_stale.get(p, t0) for p in workers) - t0) * 1000),
        blind_ms=None if blind_at is None else max(0.0, (blind_at - t0) * 1000),
        blind_premature=blind_at is not None and blind_at < switched,
        rounds=rounds,
        rounds_full_coverage=full,
        unattributed=unattributed,
        per_worker_publish_ms={p: (t - t0) * 1000 for p, t in publish.items()},
    )


def wait_for_version(server: Server, target: int, timeout: float = 10.0) -> None:
    deadline = now() + timeout
    workers = set(server.worker_pids)
    seen: set[int] = set()
    while now() < deadline:
        seen |= {o.pid for o in probe_round(server, 16) if o.version >= target}
        if workers <= seen:
            return
        time.sleep(0.005)
    raise TimeoutError(f"workers {sorted(workers - seen)} never served version {target}")


# --- the rollback -------------------------------------------------------------------------------
@dataclass
class RollbackTiming:
    ms: float
    server_ms: float
    changed: int
    version: int
    t_resp: float


def http_call(
    server: Server, method: str, path: str, payload: dict[str, Any] | None = None
) -> tuple[float, int, Any, float]:
    """One request on a fresh connection (like curl or the CLI), timed from before connect to the
    last byte of the response: (ms, status, decoded JSON, monotonic time of the response)."""
    headers = {"Authorization": f"Bearer {server.store.token}"}
    body = None
    if payload is not None:
        body = json.dumps(payload).encode()
        headers["Content-Type"] = "application/json"
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        t_start = now()
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        raw = resp.read()
        t_resp = now()
    finally:
        conn.close()
    return (t_resp - t_start) * 1000, resp.status, json.loads(raw), t_resp


def emergency_rollback(server: Server) -> RollbackTiming:
    ms, status, data, t_resp = http_call(
        server, "POST", ROLLBACK_PATH, {"reason": "bench_rollback"}
    )
    if status != 200:
        raise RuntimeError(f"rollback answered {status}: {str(data)[:300]}")
    if data.get("verification") != "success":
        raise RuntimeError(f"rollback verification {data.get('verification')!r}")
    return RollbackTiming(
        ms=ms,
        server_ms=float(data["duration_ms"]),
        changed=len(data["changed"]),
        version=int(data["version"]),
        t_resp=t_resp,
    )


PEERS = {
    "GET /api/feature-flags/health (public, in-memory)": ("GET", PROBE_PATH, None),
    "POST /api/feature-flags/toggle (1 flag, same value: nothing written)": (
        "POST",
        "/api/feature-flags/toggle",
        # postgresql_support is off after set-up and after every rollback: the toggle finds it
        # at that value and writes nothing (no version, no audit event); a read of the store.
        {"flag_name": "postgresql_support", "enabled": False, "reason": "bench peer"},
    ),
}


def peer_call(server: Server, name: str) -> float:
    method, path, payload = PEERS[name]
    ms, status, data, _ = http_call(server, method, path, payload)
    if status != 200:
        raise RuntimeError(f"{name} answered {status}: {str(data)[:300]}")
    return ms


@dataclass
class ConfigResult:
    flags: int
    workers: int
    rollback_ms: list[float] = field(default_factory=list)
    server_ms: list[float] = field(default_factory=list)
    changed: list[int] = field(default_factory=list)
    prop_rollback: list[Propagation] = field(default_factory=list)
    prop_external: list[Propagation] = field(default_factory=list)
    prop_quiet: list[Propagation] = field(default_factory=list)
    peers: dict[str, list[float]] = field(default_factory=dict)
    worker_restarts: list[int] = field(default_factory=list)
    probe_k: int = 0
    probe_r: int = 0


def run_config(
    server: Server, engine: Any, runs: int, warmup: int, args: argparse.Namespace
) -> ConfigResult:
    result = ConfigResult(
        server.store.flags, server.workers, probe_k=args.probe_k, probe_r=args.probe_rounds
    )
    expected_changed = len(server.store.enabled_after_setup)
    multi = server.workers > 1
    for i in range(warmup + runs):
        version, t_commit = reenable(server.store, engine)
        if multi and i >= warmup:
            # A change made outside the servers (CLI, another instance): only polling spreads it.
            result.prop_external.append(
                watch_propagation(
                    server,
                    version,
                    t_commit,
                    k=args.probe_k,
                    r=args.probe_rounds,
                    timeout=10,
                    gap=args.probe_gap_ms / 1000,
                )
            )
        else:
            wait_for_version(server, version)
        if multi and i >= warmup and args.quiet_delay_ms > 0:
            # The same kind of change, but nobody probes until it must be over: the server-clock
            # figure without the probes' CPU load (2 cores shared by 4 workers and this script).
            time.sleep(args.settle_ms / 1000)
            version, t_commit = bump_version(engine)
            result.prop_quiet.append(
                watch_propagation(
                    server,
                    version,
                    t_commit,
                    k=args.probe_k,
                    r=1,
                    timeout=10,
                    gap=args.probe_gap_ms / 1000,
                    start_delay=args.quiet_delay_ms / 1000,
                )
            )
        time.sleep(args.settle_ms / 1000)  # idle server: no refresh or probe in flight
        timing = emergency_rollback(server)
        if timing.changed != expected_changed:
            raise RuntimeError(
                f"rollback changed {timing.changed} flags, expected {expected_changed}: "
                "the re-enable did not reach the server?"
            )
        if multi:
            prop = watch_propagation(
                server,
                timing.version,
                timing.t_resp,
                k=args.probe_k,
                r=args.probe_rounds,
                timeout=10,
                gap=args.probe_gap_ms / 1000,
            )
        peer_ms = {}
        for name in PEERS:  # same run, same machine state: the rollback's yardsticks
            time.sleep(args.settle_ms / 1000)
            peer_ms[name] = peer_call(server, name)
        if i < warmup:
            continue
        for name, ms in peer_ms.items():
            result.peers.setdefault(name, []).append(ms)
        result.rollback_ms.append(timing.ms)
        result.server_ms.append(timing.server_ms)
        result.changed.append(timing.changed)
        if multi:
            result.prop_rollback.append(prop)
    gone = sorted(set(server.worker_pids) - set(server.live_workers()))
    result.worker_restarts = gone
    return result


# --- report ---------------------------------------------------------------------------------------
def fmt(x: float | None, digits: int = 1) -> str:
    return "-" if x is None else f"{x:,.{digits}f}"


def stats_cells(values: list[float]) -> list[str]:
    return [
        fmt(median(values)),
        fmt(percentile(values, 95)),
        fmt(min(values)),
        fmt(max(values)),
    ]


def report(results: list[ConfigResult], rollback_target: float, prop_target: float) -> None:
    rows = []
    for r in results:
        med = median(r.rollback_ms)
        rows.append(
            [
                f"{r.flags} flags, WORKERS={r.workers}",
                str(len(r.rollback_ms)),
                str(r.changed[0]) if r.changed else "-",
                *stats_cells(r.rollback_ms),
                fmt(median(r.server_ms)),
                fmt(percentile(r.server_ms, 95)),
                "PASS" if med <= rollback_target else "FAIL",
            ]
        )
    print_table(
        "POST /api/feature-flags/emergency-rollback, request to response (ms)",
        [
            "configuration",
            "runs",
            "changed",
            "median",
            "p95",
            "min",
            "max",
            "server median",
            "server p95",
            f"<= {rollback_target:g} ms",
        ],
        rows,
    )
    rows = []
    for r in results:
        label = f"{r.flags} flags, WORKERS={r.workers}"
        for name, values in r.peers.items():
            paired = [a / b for a, b in zip(r.rollback_ms, values, strict=True)]
            rows.append(
                [
                    label,
                    name,
                    fmt(median(values)),
                    fmt(percentile(values, 95)),
                    f"{median(r.rollback_ms) / median(values):,.1f}x",
                    f"{median(paired):,.1f}x",
                ]
            )
            label = ""
        if r.worker_restarts:
            say(f"WARNING: {label}: workers {r.worker_restarts} disappeared during the runs")
    if rows:
        print_table(
            "Peers timed in the same runs (fresh connection each, ms) and rollback / peer",
            ["configuration", "request", "median", "p95", "rollback / peer", "paired ratio"],
            rows,
            text_columns=2,
        )
    rows = []
    coverage = []
    for r in results:
        for what, props in (
            ("after rollback response", r.prop_rollback),
            ("after external commit", r.prop_external),
            ("after external commit, unprobed", r.prop_quiet),
        ):
            if not props:
                continue
            label = f"{r.flags} flags, W={r.workers}, {what}"
            if props is r.prop_quiet:
                clock = [p.server_clock_ms for p in props]
                rows.append(
                    [
                        label,
                        "server clock (publish times)",
                        str(len(clock)),
                        fmt(median(clock)),
                        fmt(percentile(clock, 95)),
                        fmt(max(clock)),
                        "PASS" if median(clock) <= prop_target else "FAIL",
                    ]
                )
                continue
            measures: list[tuple[str, list[float], bool]] = [
                ("server clock (publish times)", [p.server_clock_ms for p in props], True),
                ("observed upper (pid-attributed)", [p.observed_upper_ms for p in props], True),
                ("observed lower (pid-attributed)", [p.observed_lower_ms for p in props], False),
                (
                    f"blind K={r.probe_k} x R={r.probe_r} (no pid)",
                    [p.blind_ms for p in props if p.blind_ms is not None],
                    False,
                ),
            ]
            for name, values, judged in measures:
                med = median(values) if values else None
                rows.append(
                    [
                        label,
                        name,
                        str(len(values)),
                        fmt(med),
                        fmt(percentile(values, 95)) if values else "-",
                        fmt(max(values)) if values else "-",
                        ("PASS" if med is not None and med <= prop_target else "FAIL")
                        if judged
                        else "",
                    ]
                )
                label = ""
            rounds = sum(p.rounds for p in props)
            full = sum(p.rounds_full_coverage for p in props)
            coverage.append(
                [
                    f"{r.flags} flags, W={r.workers}, {what}",
                    f"{rounds / len(props):.1f}",
                    f"{100 * full / max(rounds, 1):.0f}%",
                    f"{sum(p.blind_premature for p in props)} of {len(props)}",
                    str(sum(p.unattributed for p in props)),
                ]
            )
    if rows:
        print_table(
            "Propagation: from the change until every worker serves the new version (ms)",
            ["change", "measure", "runs", "median", "p95", "max", f"median <= {prop_target:g} ms"],
            rows,
            text_columns=2,
        )
        print_table(
            "Probe coverage (the blind method's blind spot)",
            [
                "change",
                "rounds per run",
                "rounds reaching all workers",
                "blind method premature",
                "unattributed probes",
            ],
            coverage,
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="8 runs per configuration")
    parser.add_argument("--runs", type=int, help="measured runs per configuration (default 30)")
    parser.add_argument("--warmup", type=int, default=3, help="unrecorded runs first")
    parser.add_argument("--flags", default="9,1000", help="flag counts, comma separated")
    parser.add_argument("--workers", default="1,4", help="worker counts, comma separated")
    parser.add_argument("--probe-k", type=int, default=16, help="fresh connections per round")
    parser.add_argument(
        "--probe-rounds",
        type=int,
        default=3,
        help="consecutive all-new rounds the blind criterion needs",
    )
    parser.add_argument("--probe-gap-ms", type=float, default=0.0, help="pause between rounds")
    parser.add_argument(
        "--quiet-delay-ms",
        type=float,
        default=1500.0,
        help="unprobed propagation: wait this long before looking (0: skip that measurement)",
    )
    parser.add_argument(
        "--settle-ms", type=float, default=200.0, help="idle time before each rollback"
    )
    parser.add_argument("--rollback-target-ms", type=float, default=50.0)
    parser.add_argument("--propagation-target-ms", type=float, default=100.0)
    parser.add_argument(
        "--python",
        default=sys.executable,
        help="interpreter for init_db and uvicorn (default: this one)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument("--json", type=Path, help="also write the raw results to this file")
    parser.add_argument(
        "--postgres",
        metavar="ADMIN_URL",
        help="run on PostgreSQL: a scratch database per store, made through this admin URL"
        " (e.g. postgresql://postgres@127.0.0.1:5432/postgres); default: SQLite",
    )
    args = parser.parse_args(argv)
    if not sys.platform.startswith("linux"):
        say("bench_rollback tells workers apart through /proc: Linux only")
        return 2
    runs = args.runs or (8 if args.quick else 30)
    flag_counts = [int(x) for x in args.flags.split(",")]
    worker_counts = [int(x) for x in args.workers.split(",")]

    say(
        f"bench_rollback: {runs} runs (+{args.warmup} warm-up) per configuration; "
        f"flags {flag_counts}; workers {worker_counts}"
    )
    say(f"machine: {machine_note()}")
    say(f"code: {code_note()}")
    say(
        f"probes: K={args.probe_k} fresh connections per round to {PROBE_PATH}, "
        f"R={args.probe_rounds}, gap {args.probe_gap_ms:g} ms; settle {args.settle_ms:g} ms"
    )
    results: list[ConfigResult] = []
    tmp = Path(tempfile.mkdtemp(prefix="pcm-bench-rollback-"))
    started = time.monotonic()
    try:
        for total in flag_counts:
            with postgres_database(args.postgres) as database_url:
                t = time.monotonic()
                store = prepare_store(tmp / f"flags{total}", total, args.python, database_url)
                say(
                    f"store with {total} flags ready in {time.monotonic() - t:.1f} s "
                    f"({len(store.enabled_after_setup)} enabled, "
                    f"{'PostgreSQL' if database_url else 'SQLite'})"
                )
                engine = make_engine(store.settings.effective_database_url)
                try:
                    for workers in worker_counts:
                        server = Server(store, workers, args.python)
                        try:
                            server.start()
                            say(
                                f"  server on :{server.port}, WORKERS={workers}, "
                                f"worker pids {server.worker_pids}"
                            )
                            t = time.monotonic()
                            result = run_config(server, engine, runs, args.warmup, args)
                            results.append(result)
                            say(
                                f"  done in {time.monotonic() - t:.1f} s: rollback median "
                                f"{median(result.rollback_ms):.1f} ms"
                            )
                        finally:
                            server.stop()
                finally:
                    engine.dispose()
    finally:
        if args.keep:
            say(f"kept {tmp}")
        else:
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)
    say(f"total {time.monotonic() - started:.0f} s; machine now: {machine_note()}")
    report(results, args.rollback_target_ms, args.propagation_target_ms)
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "machine": machine_note(),
                    "runs": runs,
                    "results": [
                        {
                            "flags": r.flags,
                            "workers": r.workers,
                            "rollback_ms": r.rollback_ms,
                            "server_ms": r.server_ms,
                            "peers": r.peers,
                            "worker_restarts": r.worker_restarts,
                            "propagation_after_rollback": [p.__dict__ for p in r.prop_rollback],
                            "propagation_after_external_commit": [
                                p.__dict__ for p in r.prop_external
                            ],
                        }
                        for r in results
                    ],
                },
                indent=1,
                default=str,
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
