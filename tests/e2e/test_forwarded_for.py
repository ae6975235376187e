"""X-Forwarded-For through the real launchers: believed only from PCM_TRUSTED_PROXIES, so a
client on 127.0.0.1 cannot rotate it to escape the per-address sign-in throttle."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time

import httpx

from tests.e2e.conftest import Server

LIMIT = "8"  # per-address failures before the block, kept low: each try is an Argon2 check


def failures_rotating_forwarded_for(url: str, count: int) -> list[int]:
    with httpx.Client(base_url=url, timeout=10) as http:
        return [
            http.post(
                "/api/auth/login",
                json={"username": f"guess{i}", "password": "not the password!"},
                headers={"X-Forwarded-For": f"203.0.113.{i}"},
            ).status_code
            for i in range(count)
        ]


def test_start_sh__rotating_forwarded_for__still_blocked_per_address(
    server_dirs: Server,
) -> None:
    # Given the server started by ./start.sh with no trusted proxy (the default)
    started = server_dirs.start({"PCM_LOGIN_MAX_FAILURES_PER_ADDRESS": LIMIT})
    assert started.returncode == 0, started.stdout + started.stderr
    # When a local client claims a new address at every failure
    codes = failures_rotating_forwarded_for(server_dirs.url, 10)
    # Then its real address is blocked all the same
    assert codes == [401] * 8 + [429] * 2


def test_start_sh__trusted_proxy__forwarded_for_names_the_client(server_dirs: Server) -> None:
    started = server_dirs.start(
        {"PCM_LOGIN_MAX_FAILURES_PER_ADDRESS": LIMIT, "PCM_TRUSTED_PROXIES": "127.0.0.1"}
    )
    assert started.returncode == 0, started.stdout + started.stderr
    # Behind a trusted proxy each forwarded address is a client of its own
    assert failures_rotating_forwarded_for(server_dirs.url, 10) == [401] * 10


def test_python_m_backend_main__rotating_forwarded_for__still_blocked_per_address(
    server_dirs: Server,
) -> None:
    # Given a data directory made by a first start, then the server run by backend.main:main
    assert server_dirs.start().returncode == 0
    assert server_dirs.stop().returncode == 0
    env = {**server_dirs.env, "PCM_LOGIN_MAX_FAILURES_PER_ADDRESS": LIMIT}
    proc = subprocess.Popen(
        [sys.executable, "-m", "backend.main"],
        cwd=server_dirs.root,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{server_dirs.url}/api/health", timeout=1).status_code < 500:
                    break
            assert proc.poll() is None, "backend.main exited"
            time.sleep(0.2)
        # When / Then: as with ./start.sh
        assert failures_rotating_forwarded_for(server_dirs.url, 10) == [401] * 8 + [429] * 2
    finally:
        proc.terminate()
        proc.wait(timeout=15)
