"""Several uvicorn workers agree on flags; concurrent writes through them are all kept."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import httpx

from tests.e2e.conftest import Server


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

    def hammer(i: int) -> list[int]:
        codes = []
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
                codes.append(r.status_code)
        return codes

    with server_dirs.client() as c:
        before = c.get("/api/feature-flags/audit?limit=1").json()["total"]
    with ThreadPoolExecutor(6) as pool:
        codes = [code for batch in pool.map(hammer, range(6)) for code in batch]
    assert codes == [200] * 90
    with server_dirs.client() as c:
        audit = c.get("/api/feature-flags/audit?flag=atomic_session_updates&limit=1").json()
        assert c.get("/api/feature-flags/audit?limit=1").json()["total"] == before + 90
        assert c.get("/api/feature-flags/audit/verify").json()["ok"] is True
        last = audit["items"][0]["new_value"]
        assert c.get("/api/feature-flags/atomic_session_updates").json()["stored_enabled"] is last
