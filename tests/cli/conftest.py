"""The CLI run in-process (Typer's runner) on a temp data directory, or as a process against
a real server started by ./start.sh (the e2e fixtures)."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import Result
from typer.testing import CliRunner

from backend.cli import app
from tests.e2e.conftest import Server, free_port, server, server_dirs

__all__ = ["Server", "server", "server_dirs"]


@dataclass
class Cli:
    """`pcm-ops` with PCM_DATA_DIR/PCM_LOG_DIR on a temp dir and a port nobody listens on."""

    env: dict[str, str]
    data_dir: Path
    log_file: Path

    def __call__(self, *args: str, extra_env: dict[str, str] | None = None) -> Result:
        runner = CliRunner()
        return runner.invoke(app, list(args), env={**self.env, **(extra_env or {})})

    @property
    def db(self) -> Path:
        return self.data_dir / "pcm_ops_tools.db"

    def flag(self, name: str) -> bool:
        with sqlite3.connect(self.db) as conn:
            row = conn.execute("SELECT enabled FROM feature_flags WHERE name = ?", (name,))
            return bool(row.fetchone()[0])


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    env = {
        "PCM_DATA_DIR": str(tmp_path / "data"),
        "PCM_LOG_DIR": str(tmp_path / "logs"),
        "PORT": str(free_port()),
    }
    return Cli(env, tmp_path / "data", tmp_path / "logs" / "pcm_ops_tools.log")


@pytest.fixture
def initialized_cli(cli: Cli) -> Cli:
    result = cli("db", "init")
    assert result.exit_code == 0, result.output
    return cli
