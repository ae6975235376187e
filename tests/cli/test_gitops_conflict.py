"""`pcm-ops rollback git REF` in a repository left in a conflicted merge: refused, untouched."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import pytest

from tests.cli.conftest import Cli
from tests.cli.test_gitops import git

REFUSED = 4


@pytest.fixture
def conflicted(tmp_path: Path) -> Path:
    """main and `feature` both change a.txt and add new.txt: `git merge feature` stops with
    a.txt (UU) and new.txt (AA) unmerged and b.txt auto-merged and staged."""
    path = tmp_path / "repo"
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    git(path, "config", "user.email", "test@example.invalid")
    git(path, "config", "user.name", "Test")
    (path / "a.txt").write_text("v1\n")
    (path / "b.txt").write_text("b1\n")
    git(path, "add", ".")
    git(path, "commit", "-qm", "good")
    git(path, "tag", "good")
    git(path, "checkout", "-qb", "feature")
    (path / "a.txt").write_text("feature\n")
    (path / "b.txt").write_text("b from feature\n")
    (path / "new.txt").write_text("feature's new file\n")
    git(path, "add", ".")
    git(path, "commit", "-qm", "feature")
    git(path, "checkout", "-q", "main")
    (path / "a.txt").write_text("main\n")
    (path / "new.txt").write_text("main's new file\n")
    git(path, "add", ".")
    git(path, "commit", "-qm", "main")
    merge = subprocess.run(
        ["git", "merge", "feature"], cwd=path, capture_output=True, text=True, check=False
    )
    assert merge.returncode != 0 and "CONFLICT" in merge.stdout, merge.stdout
    (path / "notes.txt").write_text("untracked\n")
    return path


def state(repo: Path) -> dict[str, object]:
    """Everything a rollback could disturb: HEAD, the merge, the index, the files, the stashes."""
    files = {
        str(p.relative_to(repo)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(repo.rglob("*"))
        if p.is_file() and ".git" not in p.relative_to(repo).parts
    }
    return {
        "head": git(repo, "rev-parse", "HEAD"),
        "branch": git(repo, "symbolic-ref", "--short", "HEAD"),
        "merge_head": (repo / ".git" / "MERGE_HEAD").read_text(),
        "status": git(repo, "status", "--porcelain=v2", "--untracked-files=all"),
        "index": git(repo, "ls-files", "--stage"),
        "stash": git(repo, "stash", "list"),
        "files": files,
    }


@pytest.mark.parametrize("dry_run", [False, True], ids=["run", "dry-run"])
def test_conflicted_merge_is_refused_and_left_untouched(
    initialized_cli: Cli, conflicted: Path, dry_run: bool
) -> None:
    before = state(conflicted)
    assert "<<<<<<<" in (conflicted / "a.txt").read_text()
    args = ["rollback", "git", "good", "--repo", str(conflicted), "--no-start"]
    result = initialized_cli(*args, *(["--dry-run"] if dry_run else []))
    assert result.exit_code == REFUSED, result.output
    assert "refused: unresolved merge conflicts in" in result.output
    assert "a.txt" in result.output and "new.txt" in result.output
    assert "b.txt" not in result.output  # merged cleanly: not a conflict
    assert state(conflicted) == before
    # Nothing was done, so nothing was recorded.
    records = initialized_cli("records", "list", "--json")
    assert records.exit_code == 0, records.output
    assert json.loads(records.stdout) == []


def test_a_resolved_but_unfinished_merge_is_refused(initialized_cli: Cli, conflicted: Path) -> None:
    """Every conflict resolved and staged, the merge not committed: nothing is unmerged any
    more, but a stash and checkout would still drop the merge, so the rollback refuses."""
    (conflicted / "a.txt").write_text("resolved\n")
    (conflicted / "new.txt").write_text("resolved\n")
    git(conflicted, "add", "a.txt", "new.txt")
    before = state(conflicted)
    result = initialized_cli("rollback", "git", "good", "--repo", str(conflicted), "--no-start")
    assert result.exit_code == REFUSED, result.output
    assert "a merge is in progress" in result.output
    assert state(conflicted) == before
