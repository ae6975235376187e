"""The commands as the README and the runbook write them: `./pcm-ops …` from a fresh shell
(no .venv/bin on PATH, any directory) and `python backend/db/init_db.py` with a Python that
is not the project's (it lacks alembic and the rest: the script re-runs itself in .venv)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.e2e.conftest import ROOT, Server


def base_python() -> str:
    """The interpreter .venv was made from: none of the project's dependencies."""
    return str(Path(sys.base_prefix) / "bin" / "python3")


def test_init_db_script__another_python__runs_in_the_venv(server_dirs: Server) -> None:
    # Given a Python without the project's dependencies
    probe = subprocess.run(
        [base_python(), "-c", "import sys; print(sys.prefix)"],
        text=True,
        capture_output=True,
        check=True,
    )
    assert Path(probe.stdout.strip()).resolve() != (ROOT / ".venv").resolve()
    # When the runbook's line runs from the repository root
    result = server_dirs.run(base_python(), "backend/db/init_db.py")
    # Then the database is set up
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Database ready" in result.stdout
    assert (server_dirs.data_dir / "pcm_ops_tools.db").exists()
    assert (server_dirs.data_dir / "admin_token").exists()


def test_pcm_ops_wrapper__from_another_directory__runs_the_cli(
    server_dirs: Server, tmp_path: Path
) -> None:
    env = {k: v for k, v in server_dirs.env.items()}
    env["PATH"] = "/usr/bin:/bin"  # .venv/bin is not on it
    run = subprocess.run(
        [str(ROOT / "pcm-ops"), "server", "status"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 3 and "not running" in run.stdout, run.stdout + run.stderr
    init = subprocess.run(
        [str(ROOT / "pcm-ops"), "db", "init"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert init.returncode == 0, init.stdout + init.stderr
    # --json output stays clean: set-up messages, if any, go to stderr
    listed = subprocess.run(
        [str(ROOT / "pcm-ops"), "flags", "list", "--json"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert listed.returncode == 0, listed.stderr
    assert len(json.loads(listed.stdout)["flags"]) >= 9
