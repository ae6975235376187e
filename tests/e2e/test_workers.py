"""Several uvicorn workers agree on flags; concurrent writes through them are all kept."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from backend.core.config import Settings
from backend.db.session import engine_for, session_factory
from backend.flags.registry import FlagDefinition, Risk
from backend.flags.service import create_flag
from tests.e2e.conftest import Server, clean_env, free_port
from tests.postgres import scratch_database


def versions_seen(server: Server, rounds: int = 24) -> set[int]:
    seen = set()
    for _ in range(rounds):  # fresh connections spread over the workers
        with httpx.Client(base_url=server.url, timeout=5) as c:
            seen.add(int(c.get("/api/health").headers["x-flags-version"]))
    return seen


def test_change_reaches_every_worker(server_dirs: Server) -> None:
    assert server_dirs.start({"WORKERS": "4"}).returncode == 0
    with server_dirs.client() as c:
        r = c.post(
            "/api/feature-flags/toggle",
            json={"flag_name": "xss_protection_enabled", "enabled": False},
        )
        new_version = int(r.headers["x-flags-version"])
    deadline = time.monotonic() + 2
    while versions_seen(server_dirs) != {new_version}:
        assert time.monotonic() < deadline, "workers still serve an older flags version"
    with server_dirs.client() as c:
        for _ in range(12):
            assert c.get("/api/feature-flags/xss_protection_enabled").json()["enabled"] is False


def test_concurrent_toggles_are_all_audited(server_dirs: Server) -> None:
    assert server_dirs.start({"WORKERS": "2"}).returncode == 0

    def hammer(i: int) -> list[tuple[int, bool]]:
        """Each answer's status, and whether it changed the flag (one that found the flag at
        that value already records nothing)."""
        answers = []
        with server_dirs.client() as c:
            for j in range(15):
                r = c.post(
                    "/api/feature-flags/toggle",
                    json={
                        "flag_name": "atomic_session_updates",
                        "enabled": (i + j) % 2 == 0,
                        "reason": f"t{i}-{j}",
                    },
                )
                answers.append((r.status_code, r.status_code == 200 and r.json()["changed"]))
        return answers

    with server_dirs.client() as c:
        before = c.get("/api/feature-flags/audit?limit=1").json()["total"]
    with ThreadPoolExecutor(6) as pool:
        answers = [a for batch in pool.map(hammer, range(6)) for a in batch]
    assert [code for code, _ in answers] == [200] * 90
    changed = sum(changed for _, changed in answers)
    assert changed > 0
    with server_dirs.client() as c:
        audit = c.get("/api/feature-flags/audit?flag=atomic_session_updates&limit=1").json()
        assert c.get("/api/feature-flags/audit?limit=1").json()["total"] == before + changed
        assert c.get("/api/feature-flags/audit/verify").json()["ok"] is True
        last = audit["items"][0]["new_value"]
        assert c.get("/api/feature-flags/atomic_session_updates").json()["stored_enabled"] is last


def flag_values_seen(server: Server, rounds: int = 24) -> list[dict[str, bool]]:
    """What each of `rounds` fresh connections (spread over the workers) serves."""
    seen = []
    for _ in range(rounds):
        with server.client() as c:
            flags = c.get("/api/feature-flags").json()["flags"]
        seen.append({f["name"]: f["enabled"] for f in flags})
    return seen


def test_a_large_emergency_rollback_reaches_every_worker_with_a_log_line_per_flag(
    server_dirs: Server,
) -> None:
    # 300 more flags, created while 4 workers run: they arrive through incremental refreshes,
    # and the rollback then changes them all at once.
    assert server_dirs.start({"WORKERS": "4"}).returncode == 0
    settings = Settings(data_dir=server_dirs.data_dir, log_dir=server_dirs.log_file.parent)
    engine = engine_for(settings)
    try:
        with session_factory(engine).begin() as s:
            for i in range(300):
                create_flag(
                    s,
                    FlagDefinition(f"load_flag_{i:03d}", "e2e", 3, Risk.LOW, True),
                    actor="e2e",
                )
    finally:
        engine.dispose()
    deadline = time.monotonic() + 5
    while any(len(v) != 309 or not v["load_flag_299"] for v in flag_values_seen(server_dirs)):
        assert time.monotonic() < deadline, "the new flags did not reach every worker"

    with server_dirs.client() as c:
        result = c.post("/api/feature-flags/emergency-rollback", json={"reason": "INC-42"}).json()
    changed = {item["flag"] for item in result["changed"]}
    assert {f"load_flag_{i:03d}" for i in range(300)} <= changed
    assert result["verification"] == "success"
    deadline = time.monotonic() + 5
    while any(any(v.values()) for v in flag_values_seen(server_dirs)):
        assert time.monotonic() < deadline, "a worker still serves a flag on"

    lines = [
        line
        for line in server_dirs.log_file.read_text().splitlines()
        if "Feature flag" in line and f"emergency rollback record {result['record_id']}" in line
    ]
    assert sorted(line.split("Feature flag ")[1].split(" ")[0] for line in lines) == sorted(changed)
    assert all(" WARNING [pid " in line and "reason: INC-42" in line for line in lines)
    with server_dirs.client() as c:
        assert c.get("/api/feature-flags/audit/verify").json()["ok"] is True


def test_two_instances_on_one_postgresql_database_agree(
    server_dirs: Server, tmp_path: Path
) -> None:
    # Two separate installations (own data directory, own port) share one PostgreSQL store,
    # as instances behind a load balancer do: a change made through one is served by the other.
    with scratch_database("pcm_instances") as (_, url):
        port_b = free_port()
        other = Server(
            server_dirs.root,
            {**clean_env(tmp_path / "b", port_b), "DATABASE_URL": url},
            port_b,
            tmp_path / "b" / "data",
            tmp_path / "b" / "logs" / "pcm_ops_tools.log",
        )
        try:
            assert server_dirs.start({"DATABASE_URL": url}).returncode == 0
            started = other.start()
            assert started.returncode == 0, started.stdout + started.stderr
            with server_dirs.client() as a:
                r = a.post(
                    "/api/feature-flags/toggle",
                    json={"flag_name": "csrf_tokens_enabled", "enabled": False},
                )
                assert r.status_code == 200
                version = int(r.headers["x-flags-version"])
            deadline = time.monotonic() + 2
            with httpx.Client(base_url=other.url, timeout=5) as b:
                while int(b.get("/api/health").headers["x-flags-version"]) < version:
                    assert time.monotonic() < deadline, "instance B never saw A's change"
                    time.sleep(0.01)
            with other.client() as b:
                flag = b.get("/api/feature-flags/csrf_tokens_enabled").json()
            assert (flag["enabled"], flag["updated_by"]) == (False, "token:admin")
        finally:
            other.stop()
            server_dirs.stop()
