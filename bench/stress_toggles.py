"""Many clients toggling at once against a real server: contention must never look like an
outage (issue 10: under 200-client load a busy SQLite lock was journaled or answered 503
"database unreachable").

Starts `./start.sh` (its own data directory, a free port, WORKERS workers, SQLite), runs
CLIENTS concurrent clients that toggle random flags for SECONDS, polls the health endpoint
meanwhile, then reports the answers by status, how many were journaled, whether health ever
left "healthy", the toggle latency percentiles, and whether the audit chain verifies.

    .venv/bin/python bench/stress_toggles.py                 # 200 clients, 30 s, 2 workers
    .venv/bin/python bench/stress_toggles.py --clients 50 --seconds 10 --workers 1
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx
from _common import PROJECT_ROOT, code_note, machine_note, percentile

FLAGS = ["csrf_tokens_enabled", "xss_protection_enabled", "thread_safe_sessions"]


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def client(
    http: httpx.AsyncClient, until: float, statuses: Counter[str], latencies: list[float]
) -> None:
    rng = random.Random()
    while time.monotonic() < until:
        body = {"flag_name": rng.choice(FLAGS), "enabled": rng.random() < 0.5}
        started = time.perf_counter()
        try:
            r = await http.post("/api/feature-flags/toggle", json=body)
        except httpx.HTTPError as exc:
            statuses[f"transport error: {type(exc).__name__}"] += 1
            continue
        latencies.append((time.perf_counter() - started) * 1000)
        key = str(r.status_code)
        if r.status_code == 200 and r.json().get("journal_id"):
            key = "200 journaled"
        elif r.status_code >= 500:
            key = f"{r.status_code} {r.json().get('detail', '')[:40]}"
        statuses[key] += 1


async def health_watch(http: httpx.AsyncClient, until: float, seen: Counter[str]) -> None:
    while time.monotonic() < until:
        try:
            r = await http.get("/api/feature-flags/health")
            seen[r.json().get("summary", r.json().get("status", "?"))] += 1
        except httpx.HTTPError as exc:
            seen[f"transport error: {type(exc).__name__}"] += 1
        await asyncio.sleep(0.2)


async def load(url: str, token: str, clients: int, seconds: float) -> dict[str, object]:
    statuses: Counter[str] = Counter()
    health: Counter[str] = Counter()
    latencies: list[float] = []
    limits = httpx.Limits(max_connections=clients + 5, max_keepalive_connections=clients + 5)
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60, limits=limits) as http:
        until = time.monotonic() + seconds
        await asyncio.gather(
            health_watch(http, until, health),
            *(client(http, until, statuses, latencies) for _ in range(clients)),
        )
        verify = (await http.get("/api/feature-flags/audit/verify")).json()
    return {"statuses": statuses, "health": health, "latencies": latencies, "verify": verify}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    print(f"code: {code_note()}\nmachine: {machine_note()}")
    with tempfile.TemporaryDirectory(prefix="pcm-stress-") as tmp:
        port = free_port()
        env = {
            **os.environ,
            "PORT": str(port),
            "WORKERS": str(args.workers),
            "PCM_DATA_DIR": f"{tmp}/data",
            "PCM_LOG_DIR": f"{tmp}/logs",
        }
        started = subprocess.run(
            ["./start.sh"], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True
        )
        if started.returncode != 0:
            print(started.stdout + started.stderr, file=sys.stderr)
            return 1
        try:
            token = (Path(tmp) / "data" / "admin_token").read_text().strip()
            result = asyncio.run(
                load(f"http://127.0.0.1:{port}", token, args.clients, args.seconds)
            )
        finally:
            subprocess.run(["./stop.sh"], cwd=PROJECT_ROOT, env=env, capture_output=True)
        journal = (Path(tmp) / "data" / "rollback_journal.jsonl").exists()
        log_text = (Path(tmp) / "logs" / "pcm_ops_tools.log").read_text()
    latencies: list[float] = result["latencies"]  # type: ignore[assignment]
    print(
        f"{args.clients} clients, {args.seconds:g} s, {args.workers} worker(s):"
        f" {len(latencies)} toggles answered"
    )
    for key, n in sorted(result["statuses"].items()):  # type: ignore[attr-defined]
        print(f"  {key:<50} {n}")
    print(
        "  toggle latency ms: "
        + ", ".join(f"p{q} {percentile(latencies, q):.0f}" for q in (50, 95, 99))
    )
    print("  health summaries seen:", dict(result["health"]))  # type: ignore[call-overload]
    verify = result["verify"]
    print(f"  audit verify ok: {verify['ok']}")  # type: ignore[index]
    print(f"  journal file left: {journal}")
    print(f"  'last-known state' in log: {'serving last-known state' in log_text}")
    statuses: Counter[str] = result["statuses"]  # type: ignore[assignment]
    bad = sum(n for k, n in statuses.items() if not k.startswith(("200", "503 database busy")))
    journaled = statuses.get("200 journaled", 0)
    ok = bad == 0 and journaled == 0 and not journal and verify["ok"]  # type: ignore[index]
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
