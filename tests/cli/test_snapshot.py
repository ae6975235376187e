"""`pcm-ops snapshot`: its "to go back" hint, run as printed, brings the snapshot back."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.cli.conftest import Server

CSRF = "csrf_tokens_enabled"


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@x.invalid", *args],
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


def test_snapshot__the_printed_way_back__runs_as_printed_with_the_server_running(
    server: Server, tmp_path: Path
) -> None:
    # Given a running server, a repository, and a snapshot of both
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "a.txt").write_text("good\n")
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "good")
    good = git(repo, "rev-parse", "HEAD")
    pcm = str(server.root / ".venv" / "bin" / "pcm-ops")
    taken = server.run(pcm, "snapshot", "--repo", str(repo), "--note", "before csrf")
    assert taken.returncode == 0, taken.stdout + taken.stderr
    (hint,) = [line for line in taken.stdout.splitlines() if "to go back:" in line]
    commands = hint.split("to go back:", 1)[1].strip()
    # ... then a change to the code and to the database
    (repo / "a.txt").write_text("bad\n")
    git(repo, "commit", "-qam", "bad")
    with server.client() as c:
        r = c.post("/api/feature-flags/toggle", json={"flag_name": CSRF, "enabled": False})
        assert r.json()["changed"] is True
    # (no response-time baseline: this test judges behaviour, not the machine's speed)
    server.data_dir.joinpath("baseline.json").unlink(missing_ok=True)

    # When the printed commands are run, as printed, by a shell
    back = server.run("bash", "-c", commands, timeout=240)

    # Then they succeed: the code and the database are back, and the server runs again
    assert back.returncode == 0, commands + "\n" + back.stdout + back.stderr
    assert git(repo, "rev-parse", "HEAD") == good
    with server.client() as c:
        assert c.get("/api/health").status_code == 200
        assert c.get(f"/api/feature-flags/{CSRF}").json()["enabled"] is True
