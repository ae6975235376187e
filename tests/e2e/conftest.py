"""A real server started by the real scripts, on a free port, with its own data directory."""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.environment import is_leaky

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    root: Path
    env: dict[str, str]
    port: int
    data_dir: Path
    log_file: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def run(
        self, *args: str, extra_env: dict[str, str] | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        env = {**self.env, **(extra_env or {})}
        return subprocess.run(
            list(args), cwd=self.root, env=env, capture_output=True, text=True, timeout=timeout
        )

    def token(self) -> str:
        return (self.data_dir / "admin_token").read_text().strip()

    def client(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.url, timeout=10, headers={"Authorization": f"Bearer {self.token()}"}
        )

    def start(self, extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return self.run("./start.sh", extra_env=extra_env)

    def stop(self) -> subprocess.CompletedProcess[str]:
        return self.run("./stop.sh")

    @classmethod
    def in_dir(cls, tmp: Path, extra_env: dict[str, str] | None = None) -> Server:
        """A server configuration whose data and logs live in `tmp`, on a free port."""
        port = free_port()
        env = {**clean_env(tmp, port), **(extra_env or {})}
        return cls(ROOT, env, port, tmp / "data", tmp / "logs" / "pcm_ops_tools.log")

    @classmethod
    @contextmanager
    def running(cls, tmp: Path, extra_env: dict[str, str] | None = None) -> Iterator[Server]:
        """A server started with ./start.sh in `tmp`, stopped when the block ends."""
        server = cls.in_dir(tmp, extra_env)
        result = server.start()
        assert result.returncode == 0, result.stdout + result.stderr
        try:
            yield server
        finally:
            server.stop()


def clean_env(tmp: Path, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not is_leaky(k)}
    env.update(PORT=str(port), PCM_DATA_DIR=str(tmp / "data"), PCM_LOG_DIR=str(tmp / "logs"))
    return env


@pytest.fixture
def server_dirs(tmp_path: Path) -> Iterator[Server]:
    """A server configuration (not started); stopped at the end whatever the test did."""
    server = Server.in_dir(tmp_path)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def server(server_dirs: Server) -> Server:
    """A running server, started with ./start.sh."""
    result = server_dirs.start()
    assert result.returncode == 0, result.stdout + result.stderr
    return server_dirs
