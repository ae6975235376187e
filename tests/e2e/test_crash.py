"""SIGKILL of every server process at random moments, during concurrent toggles and during
emergency rollbacks: an acknowledged write is never lost, the audit chain and the SQLite file
stay intact, and an emergency rollback is all or nothing.

Each round drives the server (the real app under uvicorn, two worker processes sharing the
listening socket, see crash_server.py) and SIGKILLs both workers at a random moment; the next
workers start on what the kill left. CI runs ROUNDS rounds; `-m slow` runs SLOW_ROUNDS.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import ROOT, Server

ROUNDS = 20
SLOW_ROUNDS = 120
# Flags whose value changes nothing the test relies on (the token, the JSON it sends).
TOGGLED = (
    "csrf_tokens_enabled",
    "xss_protection_enabled",
    "enhanced_error_handling",
    "atomic_session_updates",
    "thread_safe_sessions",
)


@dataclass(frozen=True)
class Ack:
    """A toggle the server answered 200 to."""

    flag: str
    enabled: bool
    version: int


@dataclass
class Crashes:
    server: Server
    acks: list[Ack] = field(default_factory=list)
    kills: int = 0
    emergency: dict[str, int] = field(default_factory=lambda: {"applied": 0, "not applied": 0})
    harness: subprocess.Popen[str] | None = None
    workers: list[int] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)

    def launch(self) -> None:
        """The harness: the app imported once, the port bound once (see crash_server.py)."""
        self.server.log_file.parent.mkdir(parents=True, exist_ok=True)
        console = (self.server.log_file.parent / "console.log").open("ab")
        with console:
            self.harness = subprocess.Popen(
                [sys.executable, "-m", "tests.e2e.crash_server", str(self.server.port)],
                cwd=ROOT,
                env=self.server.env,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=console,
                text=True,
            )

    def start(self) -> None:
        assert self.harness is not None and self.harness.stdin and self.harness.stdout
        self.harness.stdin.write("start\n")
        self.harness.stdin.flush()
        words = self.harness.stdout.readline().split()
        assert words[:1] == ["pids"], f"the harness said {words}"
        self.workers = [int(w) for w in words[1:]]
        deadline = time.monotonic() + 60
        with httpx.Client(timeout=2) as http:
            while time.monotonic() < deadline:
                with contextlib.suppress(httpx.HTTPError):
                    if http.get(f"{self.server.url}/api/health").status_code == 200:
                        return
                time.sleep(0.02)
        pytest.fail("the server did not come up")

    def kill(self) -> None:
        """SIGKILL every worker at once."""
        for pid in self.workers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.workers = []
        self.kills += 1

    def close(self) -> None:
        self.kill()
        if self.harness is not None and self.harness.poll() is None:
            assert self.harness.stdin is not None
            self.harness.stdin.write("quit\n")
            self.harness.stdin.close()
            self.harness.wait(timeout=10)

    def client(self) -> httpx.Client:
        return self.server.client()


def toggler(crashes: Crashes, rng: random.Random, stop: threading.Event) -> None:
    with crashes.client() as http:
        while not stop.is_set():
            flag, enabled = rng.choice(TOGGLED), rng.random() < 0.5
            try:
                r = http.post(
                    "/api/feature-flags/toggle", json={"flag_name": flag, "enabled": enabled}
                )
            except httpx.HTTPError:
                return  # killed mid-request: not acknowledged
            if r.status_code == 200:
                crashes.acks.append(Ack(flag, enabled, int(r.json()["version"])))
            else:
                crashes.refused.append(f"{r.status_code} {r.text[:200]}")


def toggle_round(crashes: Crashes, rng: random.Random) -> None:
    """Four clients toggle concurrently; everything dies at a random moment."""
    stop = threading.Event()
    threads = [
        threading.Thread(target=toggler, args=(crashes, random.Random(rng.random()), stop))
        for _ in range(4)
    ]
    for t in threads:
        t.start()
    time.sleep(rng.uniform(0.1, 1.0))
    crashes.kill()
    stop.set()
    # Requests the kill left waiting on the listening socket are served by the next workers.
    crashes.start()
    for t in threads:
        t.join(timeout=30)


def flag_values(http: httpx.Client) -> dict[str, bool]:
    return {f["name"]: f["enabled"] for f in http.get("/api/feature-flags").json()["flags"]}


def emergency_round(crashes: Crashes, rng: random.Random) -> None:
    """Every flag away from its rollback value, then an emergency rollback killed mid-way."""
    with crashes.client() as http:
        flags = http.get("/api/feature-flags").json()["flags"]
        for f in flags:
            if f["name"] == "postgresql_support":
                continue  # on, the restarts after each kill would move the database (and 409s)
            r = http.post(
                "/api/feature-flags/toggle",
                json={"flag_name": f["name"], "enabled": not f["rollback_value"]},
            )
            assert r.status_code == 200, r.text
            crashes.acks.append(Ack(f["name"], not f["rollback_value"], r.json()["version"]))
        before = flag_values(http)
        records = http.get("/api/rollback-records").json()["total"]
    answer: list[httpx.Response] = []
    connected = threading.Event()

    def rollback() -> None:
        with contextlib.suppress(httpx.HTTPError), crashes.client() as http:
            http.get("/api/health")  # the connection is open: the kill is timed from the POST
            connected.set()
            answer.append(http.post("/api/feature-flags/emergency-rollback", json={}))

    thread = threading.Thread(target=rollback)
    thread.start()
    connected.wait(timeout=30)
    time.sleep(rng.uniform(0.0, 0.1))
    crashes.kill()
    crashes.start()
    thread.join(timeout=30)
    with crashes.client() as http:
        after = flag_values(http)
        new_records = http.get("/api/rollback-records").json()["total"] - records
    rollback_values = {f["name"]: f["rollback_value"] for f in flags}
    if new_records:
        assert new_records == 1
        assert after == rollback_values, "a rollback record, but not every flag rolled back"
        crashes.emergency["applied"] += 1
    else:
        assert after == before, "flags changed without a rollback record"
        assert not (answer and answer[0].status_code == 200), "acknowledged rollback lost"
        crashes.emergency["not applied"] += 1


def check_store(crashes: Crashes, database: Path, initial: dict[str, bool]) -> None:
    with crashes.client() as http:
        chain = http.get("/api/feature-flags/audit/verify").json()
        current = flag_values(http)
    assert chain["ok"], chain["problems"]
    crashes.kill()
    with contextlib.closing(sqlite3.connect(database)) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        events = db.execute(
            "SELECT flag_name, version, new_value FROM flag_audit_events ORDER BY version, id"
        ).fetchall()
    history: dict[str, list[tuple[int, bool]]] = {}
    for name, version, value in events:
        history.setdefault(name, []).append((version, bool(value)))

    def value_at(flag: str, version: int) -> bool:
        earlier = [value for v, value in history.get(flag, []) if v <= version]
        return earlier[-1] if earlier else initial[flag]

    lost = [a for a in crashes.acks if value_at(a.flag, a.version) != a.enabled]
    assert not lost, f"{len(lost)} acknowledged toggles lost, e.g. {lost[:5]}"
    # The store and the audit agree on every flag's current value.
    for flag, value in current.items():
        assert value == value_at(flag, 2**62), flag


@pytest.fixture
def crashes(tmp_path: Path) -> Iterator[Crashes]:
    server = Server.in_dir(tmp_path)
    # The real set-up (schema, seeded flags, admin token), as start.sh does it.
    result = server.run(".venv/bin/pcm-ops", "init-db")
    assert result.returncode == 0, result.stdout + result.stderr
    state = Crashes(server)
    state.launch()
    try:
        yield state
    finally:
        state.close()


def run_rounds(crashes: Crashes, rounds: int, seed: int) -> None:
    rng = random.Random(seed)
    crashes.start()
    with crashes.client() as http:
        initial = flag_values(http)
    for n in range(rounds):
        if n % 4 == 3:
            emergency_round(crashes, rng)
        else:
            toggle_round(crashes, rng)
    check_store(crashes, crashes.server.data_dir / "pcm_ops_tools.db", initial)
    assert crashes.kills >= rounds
    assert not crashes.refused, crashes.refused[:5]
    assert len(crashes.acks) > rounds, "too few acknowledged toggles to prove anything"
    print(
        f"{crashes.kills} SIGKILLs, {len(crashes.acks)} acknowledged toggles, none lost; "
        f"emergency rollbacks killed: {crashes.emergency}"
    )


def test_sigkill_during_toggles_and_rollbacks__nothing_acknowledged_is_lost(
    crashes: Crashes,
) -> None:
    run_rounds(crashes, ROUNDS, seed=10)


@pytest.mark.slow
def test_sigkill_many_rounds__nothing_acknowledged_is_lost(crashes: Crashes) -> None:
    run_rounds(crashes, SLOW_ROUNDS, seed=int(time.time()))
