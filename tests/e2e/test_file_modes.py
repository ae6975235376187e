"""Everything under data/ and logs/ is owner-only (files 0600, directories 0700): the database
holds password and token hashes and sealed AWS credentials. Checked on the real server started
by ./start.sh and on the CLI, both from a shell whose umask (022) would make files 0644."""

from __future__ import annotations

import os
import stat
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from backend.flags.last_known import saved_version
from tests.e2e.conftest import Server


def offenders(*roots: Path) -> list[str]:
    """Every file not 0600 and directory not 0700 under `roots` (roots included)."""
    found: list[str] = []
    for root in roots:
        for current, dirs, files in os.walk(root):
            here = Path(current)
            paths = ([here] if here == root else []) + [here / n for n in (*dirs, *files)]
            for path in paths:
                st = os.lstat(path)
                wanted = 0o700 if stat.S_ISDIR(st.st_mode) else 0o600
                if stat.S_IMODE(st.st_mode) != wanted:
                    found.append(f"{path} {stat.S_IMODE(st.st_mode):04o}")
    return found


def names(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.fixture(autouse=True)
def shell_umask() -> Iterator[None]:
    """The scripts run from a shell with the usual umask: only our code makes files private."""
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


def older_tree(server: Server) -> list[Path]:
    """data/ and logs/ as an older version left them: 0755 directories, 0644 files."""
    logs = server.log_file.parent
    made = [server.data_dir, server.data_dir / "old_backups", logs]
    for d in made:
        d.mkdir(parents=True, exist_ok=True)
        d.chmod(0o755)
    for f in (server.data_dir / "old_backups" / "b.db", server.log_file):
        f.write_text("older\n")
        f.chmod(0o644)
        made.append(f)
    return made


def test_server__started_toggled_backed_up_and_logging__every_file_0600_every_dir_0700(
    server_dirs: Server,
) -> None:
    # Given data/ and logs/ left world-readable by an older version
    older_tree(server_dirs)

    # When the server starts, a flag changes, a backup is taken and the logs are written
    started = server_dirs.start()
    assert started.returncode == 0, started.stdout + started.stderr
    with server_dirs.client() as c:
        r = c.post(
            "/api/feature-flags/toggle", json={"flag_name": "csrf_tokens_enabled", "enabled": False}
        )
        assert r.status_code == 200, r.text
    backup = server_dirs.run(".venv/bin/pcm-ops", "db", "backup")
    assert backup.returncode == 0, backup.stdout + backup.stderr
    state = server_dirs.data_dir / "flags_last_known.json"
    deadline = time.monotonic() + 10
    while saved_version(state) != r.json()["version"] and time.monotonic() < deadline:
        time.sleep(0.05)  # the poller saves the state once the change is served
    data, logs = server_dirs.data_dir, server_dirs.log_file.parent

    # Then every file is there, and owner-only
    expected = {
        "pcm_ops_tools.db",
        "pcm_ops_tools.db-wal",
        "pcm_ops_tools.db-shm",
        "flags_last_known.json",
        "backups.json",
        "admin_token",
        "admin_password",
        "pcm_ops_tools.pid",
        "old_backups/b.db",
    }
    assert expected <= names(data), sorted(names(data))
    assert any(n.startswith("pcm_ops_tools_backup_") for n in names(data))
    assert {"pcm_ops_tools.log", "server.console.log"} <= names(logs)
    assert "Feature flag csrf_tokens_enabled changed" in server_dirs.log_file.read_text()
    assert offenders(data, logs) == [], "not owner-only:\n" + "\n".join(offenders(data, logs))


def test_cli__init_db_and_backup_without_a_server__every_file_0600_every_dir_0700(
    server_dirs: Server,
) -> None:
    # Given data/ and logs/ left world-readable by an older version
    older_tree(server_dirs)

    # When the CLI sets up the database (both ways the runbook shows) and backs it up
    for command in (
        [".venv/bin/pcm-ops", "init-db"],
        [sys.executable, "backend/db/init_db.py"],
        [".venv/bin/pcm-ops", "db", "backup", "--note", "before change"],
        [".venv/bin/pcm-ops", "flags", "list"],
    ):
        done = server_dirs.run(*command)
        assert done.returncode == 0, f"{command}: {done.stdout}{done.stderr}"
    data, logs = server_dirs.data_dir, server_dirs.log_file.parent

    # Then
    assert {"pcm_ops_tools.db", "backups.json", "admin_token", "init_db.lock"} <= names(data)
    assert any(n.startswith("pcm_ops_tools_backup_") for n in names(data))
    assert "pcm_ops_tools.log" in names(logs)
    assert offenders(data, logs) == [], "not owner-only:\n" + "\n".join(offenders(data, logs))
