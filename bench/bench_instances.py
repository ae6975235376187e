"""Several instances on one PostgreSQL: how fast a toggle reaches the others, and flag-read
throughput with 1 vs 3 instances.

    .venv/bin/python bench/bench_instances.py [--quick] [--toggles 200] [--rounds 3]
        [--seconds 8] [--clients 32] [--postgres ADMIN_URL] [--json FILE]

Three instances are started as an operator would: `./start.sh` each, with its own port and
data directory, one worker each, all on one scratch PostgreSQL database (made and dropped
through ADMIN_URL, pinned with DATABASE_URL: the same engine and LISTEN/NOTIFY path as instances
there by `postgresql_support`, without the switch's extra starts) and sharing the audit,
credential and session keys as the README asks of instances. They are stopped with `./stop.sh`
(by the pid file) at the end.

1. Propagation: N toggles of one flag, alternately off and on, each POSTed to instance 1 on a
   kept-alive connection. From the toggle's response (the change is committed), instances 2
   and 3 are probed alternately on their own kept-alive connections with the public
   GET /api/feature-flags/health until each serves the new version. That answer carries
   `snapshot_age_seconds`; CLOCK_MONOTONIC is shared by every process of the machine, so the
   instance published the version at (answer time - age), +-1 ms: "server clock" propagation
   = the later of the two publish times - the toggle's response time (0 when both had it
   before the response arrived). "Observed" = when the later instance was first seen serving
   it (includes the probe's own round trip). p50/p99 over the N toggles; target 100 ms.
2. Throughput: GET /api/feature-flags/{name} (an authenticated flag read: the token is looked
   up in PostgreSQL, the flag is a dict lookup) from C kept-alive connections for S seconds,
   all to instance 1 ("1 instance") or spread evenly over the three ("3 instances", as a load
   balancer would). Same load generator both ways: a bare asyncio HTTP/1.1 client in this
   process (one request in flight per connection), far cheaper per request than httpx, so the
   client takes less of the CPU the servers need. Each round runs both configurations in a
   shuffled order, after a 1 s warm-up each; reported: median req/s over the rounds, the ratio
   of medians and the median of the per-round ratios (the most noise-robust figure), and the
   CPU the servers (from /proc, all three instances) and the client used, in cores and server
   CPU ms per read. PostgreSQL's own CPU is not counted.

The machine's cores are shared by the client, the three servers and PostgreSQL: on the
2-core reference box more instances cannot add CPU, so the ratio says how the work spreads,
not what more machines would give.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import json
import os
import random
import secrets
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

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

from backend.metrics.processes import children
from backend.security.credentials_crypto import fresh_keyring

FLAG = "xss_protection_enabled"
HEALTH_PATH = "/api/feature-flags/health"
READ_PATH = f"/api/feature-flags/{FLAG}"
now = time.monotonic  # CLOCK_MONOTONIC, the clock the servers' snapshot ages are measured on


# --- the instances --------------------------------------------------------------------------
def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def shared_env(database_url: str) -> dict[str, str]:
    """The environment every instance of one deployment shares: the database and the keys."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("FEATURE_FLAG_", "PCM_"))
        and k not in ("DATABASE_URL", "PORT", "WORKERS", "HOST", "SECRET_KEY")
    }
    env.update(
        DATABASE_URL=database_url,
        PCM_POSTGRES_URL=database_url,
        PCM_AUDIT_KEYS=fresh_keyring().to_json(),
        PCM_CREDENTIAL_KEYS=fresh_keyring().to_json(),
        SECRET_KEY=secrets.token_urlsafe(48),
        WORKERS="1",
        PYTHONUNBUFFERED="1",
    )
    return env


@dataclass
class Instance:
    root: Path
    port: int
    env: dict[str, str]

    @classmethod
    def in_dir(cls, root: Path, shared: dict[str, str]) -> Instance:
        port = free_port()
        env = shared | {
            "PORT": str(port),
            "PCM_DATA_DIR": str(root / "data"),
            "PCM_LOG_DIR": str(root / "logs"),
        }
        return cls(root, port, env)

    def script(self, name: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [f"./{name}"], cwd=PROJECT_ROOT, env=self.env, capture_output=True, text=True
        )

    def start(self) -> None:
        started = self.script("start.sh")
        if started.returncode != 0:
            raise SystemExit(f"instance on :{self.port} did not start:\n{started.stdout}")

    def stop(self) -> None:
        self.script("stop.sh")

    def token(self) -> str:
        return (self.root / "data" / "admin_token").read_text().strip()

    def cpu_seconds(self) -> float:
        """CPU time (user + system) of the server process and its children so far."""
        pid = int((self.root / "data" / "pcm_ops_tools.pid").read_text())
        tick = os.sysconf("SC_CLK_TCK")
        total = 0.0
        for p in [pid, *children(pid)]:
            with contextlib.suppress(OSError, IndexError):
                fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
                total += (int(fields[11]) + int(fields[12])) / tick
        return total


@contextlib.contextmanager
def scratch_database(admin_url: str) -> Iterator[str]:
    import psycopg

    name = f"pcm_bench_instances_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    base = admin_url.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def cluster(admin_url: str, count: int, tmp: Path) -> Iterator[list[Instance]]:
    """`count` started instances on one scratch database; stopped, and the database dropped."""
    with scratch_database(admin_url) as url:
        shared = shared_env(url)
        instances = [Instance.in_dir(tmp / f"instance{n + 1}", shared) for n in range(count)]
        try:
            for instance in instances:  # one after another: the first one migrates
                instance.start()
            yield instances
        finally:
            for instance in instances:
                instance.stop()


# --- propagation ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Propagation:
    version: int
    toggle_ms: float  # the toggle's round trip on instance 1
    server_ms: float  # the later instance's publish time - the toggle's response
    observed_ms: float  # when the later instance was first seen serving it - the response
    probes: int


def request(
    conn: http.client.HTTPConnection, method: str, path: str, token: str, body: object = None
) -> tuple[int, dict[str, str], bytes]:
    headers = {"Authorization": f"Bearer {token}"}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    conn.request(method, path, body=data, headers=headers)
    resp = conn.getresponse()
    return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()


def one_toggle(
    writer: http.client.HTTPConnection,
    probes: list[http.client.HTTPConnection],
    token: str,
    enabled: bool,
) -> Propagation:
    t_send = now()
    status, headers, raw = request(
        writer,
        "POST",
        "/api/feature-flags/toggle",
        token,
        {"flag_name": FLAG, "enabled": enabled, "reason": "bench_instances"},
    )
    t_resp = now()
    if status != 200:
        raise RuntimeError(f"toggle answered {status}: {raw[:300]!r}")
    version = int(headers["x-flags-version"])
    published: dict[int, float] = {}
    first_seen: dict[int, float] = {}
    count = 0
    while len(published) < len(probes):
        for n, conn in enumerate(probes):
            if n in published:
                continue
            t_probe = now()
            _, _, body = request(conn, "GET", HEALTH_PATH, token)
            t_answer = now()
            count += 1
            health = json.loads(body)
            if int(health["version"]) >= version:
                age = float(health["snapshot_age_seconds"])
                published[n] = (t_probe + t_answer) / 2 - age
                first_seen[n] = t_answer
        if now() - t_resp > 10:
            raise RuntimeError(f"version {version} not served by every instance within 10 s")
    return Propagation(
        version=version,
        toggle_ms=(t_resp - t_send) * 1000,
        server_ms=max(0.0, (max(published.values()) - t_resp) * 1000),
        observed_ms=(max(first_seen.values()) - t_resp) * 1000,
        probes=count,
    )


def propagation(instances: list[Instance], toggles: int, gap_ms: float) -> list[Propagation]:
    token = instances[0].token()
    writer = http.client.HTTPConnection("127.0.0.1", instances[0].port, timeout=30)
    probes = [http.client.HTTPConnection("127.0.0.1", i.port, timeout=30) for i in instances[1:]]
    samples = []
    try:
        for n in range(toggles + 5):  # 5 warm-up toggles, not recorded
            sample = one_toggle(writer, probes, token, enabled=n % 2 == 1)
            if n >= 5:
                samples.append(sample)
            time.sleep(gap_ms / 1000)
    finally:
        for conn in [writer, *probes]:
            conn.close()
    return samples


# --- throughput -------------------------------------------------------------------------------
async def read_response(reader: asyncio.StreamReader) -> int:
    """Read one HTTP/1.1 response with a Content-Length body; its status."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.lower() == "content-length":
            length = int(value)
    await reader.readexactly(length)
    return int(lines[0].split(" ", 2)[1])


async def client(port: int, token: str, until: float, statuses: dict[int, int]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    message = (
        f"GET {READ_PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n\r\n"
    ).encode()
    try:
        while now() < until:
            writer.write(message)
            status = await read_response(reader)
            statuses[status] = statuses.get(status, 0) + 1
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def load(ports: list[int], token: str, clients: int, seconds: float) -> dict[int, int]:
    statuses: dict[int, int] = {}
    until = now() + seconds
    await asyncio.gather(
        *(client(ports[n % len(ports)], token, until, statuses) for n in range(clients))
    )
    return statuses


@dataclass(frozen=True)
class Throughput:
    round: int
    instances: int
    requests: int
    seconds: float
    errors: int
    server_cpu: float  # CPU seconds of the instances' processes (all three, busy or idle)
    client_cpu: float  # CPU seconds of this process (the load generator)

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds

    @property
    def cpu_ms_per_read(self) -> float:
        """Server CPU per answered read: what a read costs, whichever way the load spreads."""
        return self.server_cpu * 1000 / max(self.requests, 1)


def measure(
    instances: list[Instance], ports: list[int], clients: int, seconds: float, rnd: int
) -> Throughput:
    token = instances[0].token()  # in the shared database: every instance accepts it
    asyncio.run(load(ports, token, clients, 1.0))  # warm-up: connections, pools, caches
    server_before = sum(i.cpu_seconds() for i in instances)
    client_before = time.process_time()
    started = now()
    statuses = asyncio.run(load(ports, token, clients, seconds))
    elapsed = now() - started
    ok = statuses.get(200, 0)
    return Throughput(
        round=rnd,
        instances=len(ports),
        requests=ok,
        seconds=elapsed,
        errors=sum(statuses.values()) - ok,
        server_cpu=sum(i.cpu_seconds() for i in instances) - server_before,
        client_cpu=time.process_time() - client_before,
    )


def throughput(
    instances: list[Instance], rounds: int, clients: int, seconds: float
) -> list[Throughput]:
    configs = {1: [instances[0].port], len(instances): [i.port for i in instances]}
    results = []
    for rnd in range(rounds):
        order = list(configs)
        random.shuffle(order)
        for count in order:
            result = measure(instances, configs[count], clients, seconds, rnd)
            say(
                f"  round {rnd + 1}: {count} instance(s) {result.per_second:,.0f} req/s,"
                f" server CPU {result.server_cpu / result.seconds:.2f} cores,"
                f" client {result.client_cpu / result.seconds:.2f} ({result.errors} errors)"
            )
            results.append(result)
    return results


# --- report -----------------------------------------------------------------------------------
def report_propagation(samples: list[Propagation], target_ms: float) -> bool:
    rows = []
    for label, values in (
        ("server clock (publish - toggle response)", [s.server_ms for s in samples]),
        ("observed (first seen - toggle response)", [s.observed_ms for s in samples]),
        ("toggle round trip on instance 1", [s.toggle_ms for s in samples]),
    ):
        rows.append(
            [label]
            + [f"{percentile(values, q):.1f}" for q in (50, 90, 99)]
            + [f"{max(values):.1f}"]
        )
    print_table(
        f"Propagation to instances 2 and 3, {len(samples)} toggles on instance 1 (ms)",
        ["measure", "p50", "p90", "p99", "max"],
        rows,
    )
    p99 = percentile([s.server_ms for s in samples], 99)
    ok = p99 <= target_ms
    say(f"{'PASS' if ok else 'FAIL'}: propagation p99 {p99:.1f} ms (target <= {target_ms:g} ms)")
    say(f"probes per toggle: median {median([float(s.probes) for s in samples]):.0f}")
    return ok


def report_throughput(results: list[Throughput], instances: int) -> None:
    by_count = {n: [r for r in results if r.instances == n] for n in (1, instances)}
    rows = []
    for n, rs in by_count.items():
        rates = [r.per_second for r in rs]
        rows.append(
            [
                f"{n} instance(s)",
                f"{median(rates):,.0f}",
                f"{min(rates):,.0f}",
                f"{max(rates):,.0f}",
                f"{median([r.server_cpu / r.seconds for r in rs]):.2f}",
                f"{median([r.client_cpu / r.seconds for r in rs]):.2f}",
                f"{median([r.cpu_ms_per_read for r in rs]):.2f}",
                str(sum(r.errors for r in rs)),
            ]
        )
    print_table(
        f"Flag reads GET {READ_PATH} ({len(by_count[1])} rounds)",
        [
            "configuration",
            "median req/s",
            "min",
            "max",
            "server cores",
            "client cores",
            "server CPU ms/read",
            "errors",
        ],
        rows,
    )
    one = {r.round: r.per_second for r in by_count[1]}
    many = {r.round: r.per_second for r in by_count[instances]}
    paired = [many[k] / one[k] for k in one]
    say(
        f"{instances} vs 1 instance: ratio of medians "
        f"{median(list(many.values())) / median(list(one.values())):.2f}, "
        f"median of per-round ratios {median(paired):.2f}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="50 toggles, 1 round of 3 s")
    parser.add_argument("--toggles", type=int, default=200)
    parser.add_argument("--gap-ms", type=float, default=20.0, help="pause between toggles")
    parser.add_argument("--rounds", type=int, default=3, help="throughput rounds")
    parser.add_argument("--seconds", type=float, default=8.0, help="per configuration and round")
    parser.add_argument("--clients", type=int, default=32, help="kept-alive connections")
    parser.add_argument("--instances", type=int, default=3)
    parser.add_argument("--propagation-target-ms", type=float, default=100.0)
    parser.add_argument(
        "--postgres",
        metavar="ADMIN_URL",
        default=os.environ.get(
            "PCM_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"
        ),
        help="where the scratch database is made and dropped",
    )
    parser.add_argument("--json", type=Path, help="also write the raw samples to this file")
    args = parser.parse_args(argv)
    if args.quick:
        args.toggles, args.rounds, args.seconds = 50, 1, 3.0
    say(f"machine: {machine_note()}")
    say(f"code: {code_note()}")
    with tempfile.TemporaryDirectory(prefix="pcm-bench-instances-") as tmp:
        t = now()
        with cluster(args.postgres, args.instances, Path(tmp)) as instances:
            ports = ", ".join(str(i.port) for i in instances)
            say(f"{len(instances)} instances on :{ports} started in {now() - t:.1f} s")
            samples = propagation(instances, args.toggles, args.gap_ms)
            rates = throughput(instances, args.rounds, args.clients, args.seconds)
    say(f"machine now: {machine_note()}")
    ok = report_propagation(samples, args.propagation_target_ms)
    report_throughput(rates, args.instances)
    if args.json:
        raw = {
            "machine": machine_note(),
            "propagation": [asdict(s) for s in samples],
            "throughput": [asdict(r) | {"per_second": r.per_second} for r in rates],
        }
        args.json.write_text(json.dumps(raw, indent=1))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
