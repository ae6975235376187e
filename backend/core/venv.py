"""Scripts run as `python backend/.../script.py` (the runbook's way) with whatever `python` is
on PATH: they re-exec themselves with the project's .venv interpreter, which has the
dependencies, setting .venv up first when it is missing (as ./start.sh does).
Standard library only: it runs before anything else could be imported.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VENV = ROOT / ".venv"
# Set on the re-exec'd process, so that a broken .venv cannot make it loop.
_MARK = "PCM_REEXECED_IN_VENV"


def in_project_venv() -> bool:
    return Path(sys.prefix).resolve() == VENV.resolve()


def use_project_venv() -> None:
    """Replace this process by the same command under .venv/bin/python unless it runs there."""
    if in_project_venv() or os.environ.get(_MARK):
        return
    python = VENV / "bin" / "python"
    if not python.exists():
        print("Setting up .venv first (as ./start.sh does) ...", file=sys.stderr)
        setup = subprocess.run(
            ["bash", "-c", "source scripts/bootstrap.sh && bootstrap_venv"],
            cwd=ROOT,
            stdout=sys.stderr,
            check=False,
        )
        if setup.returncode != 0 or not python.exists():
            sys.exit(f"could not set up {VENV}; run ./start.sh and try again")
    os.environ[_MARK] = "1"
    os.execv(python, [str(python), *sys.argv])
