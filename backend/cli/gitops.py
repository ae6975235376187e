"""`pcm-ops rollback git REF`: the runbook's "Complete Application Rollback" as one command.

stop -> stash uncommitted work with a dated message -> checkout REF -> start -> verify.
It refuses when REF does not exist and never discards work: no --force, no reset, no clean;
when the checkout is refused (an untracked file in the way) the stash is popped back.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from backend.cli import server as server_cmd
from backend.cli.console import (
    BAD_INPUT,
    FAILED,
    NOT_FOUND,
    REFUSED,
    JsonOpt,
    console,
    emit_json,
    err,
    fail,
    load_settings,
)
from backend.core.config import PROJECT_ROOT, Settings

# Porcelain codes of paths with unresolved merge conflicts.
UNMERGED = {"DD", "AU", "UD", "UA", "DU", "AA", "UU"}


class GitError(Exception):
    """A git command failed; the message is git's."""


@dataclass(frozen=True, slots=True)
class Repo:
    path: Path

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            ["git", *self._identity(args), *args],
            cwd=self.path,
            capture_output=True,
            text=True,
            check=False,
        )
        if check and done.returncode != 0:
            raise GitError((done.stderr or done.stdout).strip() or f"git {args[0]} failed")
        return done

    def _identity(self, args: tuple[str, ...]) -> list[str]:
        # A stash is a commit: give git a name when the machine has none configured.
        if args[:1] != ("stash",):
            return []
        email = subprocess.run(
            ["git", "config", "user.email"], cwd=self.path, capture_output=True, text=True
        )
        if email.stdout.strip():
            return []
        return ["-c", "user.name=pcm-ops", "-c", "user.email=pcm-ops@localhost"]

    def check(self) -> None:
        if self.run("rev-parse", "--is-inside-work-tree", check=False).returncode != 0:
            raise GitError(f"{self.path} is not a git repository (set PCM_REPO_DIR or --repo)")

    def commit_of(self, ref: str) -> str | None:
        if ref.startswith("-"):
            return None
        done = self.run("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", check=False)
        return done.stdout.strip() if done.returncode == 0 else None

    def head(self) -> tuple[str, str | None]:
        sha = self.run("rev-parse", "HEAD").stdout.strip()
        branch = self.run("symbolic-ref", "--quiet", "--short", "HEAD", check=False).stdout.strip()
        return sha, branch or None

    def changes(self) -> list[str]:
        """`git status --porcelain` lines of tracked files (untracked ones are never touched)."""
        out = self.run("status", "--porcelain", "--untracked-files=no").stdout
        return [line for line in out.splitlines() if line.strip()]

    def operation_in_progress(self) -> str | None:
        """A merge, rebase, cherry-pick or revert git has not finished, even with every
        conflict resolved: stashing and checking out would drop its state."""
        for head, what in (
            ("MERGE_HEAD", "merge"),
            ("REBASE_HEAD", "rebase"),
            ("CHERRY_PICK_HEAD", "cherry-pick"),
            ("REVERT_HEAD", "revert"),
        ):
            if self.run("rev-parse", "--verify", "--quiet", head, check=False).returncode == 0:
                return what
        return None


def repo_for(settings: Settings, repo: Path | None) -> Repo:
    r = Repo((repo or settings.repo_dir).expanduser().resolve())
    try:
        r.check()
    except GitError as exc:
        fail(str(exc), BAD_INPUT)
    return r


def runbook_date() -> str:
    """What `$(date)` prints, as in the runbook's stash message."""
    return datetime.now().astimezone().strftime("%a %b %d %H:%M:%S %Z %Y")


def start_server(settings: Settings, repo: Repo, *, quiet: bool) -> int:
    """The project's own ./start.sh when rolling back this project; else the in-process start."""
    script = repo.path / "start.sh"
    if repo.path == PROJECT_ROOT and script.exists():
        # Back on the address it had (see server_cmd.restart_settings), not on the default.
        env = {
            **os.environ,
            "HOST": settings.host,
            "PORT": str(settings.port),
            "WORKERS": str(settings.workers),
        }
        done = subprocess.run(
            [str(script)], cwd=repo.path, capture_output=quiet, check=False, env=env
        )
        return done.returncode
    if quiet:
        with contextlib.redirect_stdout(sys.stderr):
            return server_cmd.start(settings)
    return server_cmd.start(settings)


def plan(ref: str, target: str, head: str, changes: list[str], message: str) -> list[str]:
    stash = (
        f'git stash push -m "{message}"   # {len(changes)} changed file(s)'
        if changes
        else "(nothing to stash: no uncommitted changes)"
    )
    return [
        "./stop.sh   # stop the application",
        stash,
        f"git checkout {ref}   # {head[:12]} -> {target[:12]}",
        "./start.sh   # start the application",
        "pcm-ops verify   # health, critical flows, logs, performance, database",
    ]


def rollback_git(
    ref: Annotated[str, typer.Argument(help="Branch, tag or commit to go back to.")],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print each step, do nothing.")
    ] = False,
    repo_dir: Annotated[
        Path | None, typer.Option("--repo", help="The git repository (default PCM_REPO_DIR).")
    ] = None,
    no_start: Annotated[
        bool, typer.Option("--no-start", help="Leave the server stopped after the checkout.")
    ] = False,
    reason: Annotated[str, typer.Option("--reason", "-r", help="Why (kept in the record).")] = "",
    as_json: JsonOpt = False,
) -> None:
    """Roll the code back with git: stop, stash (dated), checkout REF, start, verify."""
    from backend.cli.records import add_record
    from backend.cli.verify import print_checklist, run_checks

    s = load_settings()
    repo = repo_for(s, repo_dir)
    target = repo.commit_of(ref)
    if target is None:
        fail(f"refused: {ref!r} is not a branch, tag or commit of {repo.path}", NOT_FOUND)
    head, branch = repo.head()
    changes = repo.changes()
    unmerged = [line[3:] for line in changes if line[:2] in UNMERGED]
    if unmerged:
        fail(
            f"refused: unresolved merge conflicts in {', '.join(unmerged)}; "
            "resolve or abort the merge first",
            REFUSED,
        )
    unfinished = repo.operation_in_progress()
    if unfinished:
        fail(
            f"refused: a {unfinished} is in progress in {repo.path}; "
            f"finish it (commit) or abort it (git {unfinished} --abort) first",
            REFUSED,
        )
    message = f"Backup before rollback {runbook_date()}"
    steps = plan(ref, target, head, changes, message)
    if dry_run:
        if as_json:
            emit_json({"dry_run": True, "ref": ref, "from": head, "to": target, "steps": steps})
        else:
            console.print(
                f"Dry run: rollback of {repo.path} to {ref} ({target[:12]})", markup=False
            )
            for n, step in enumerate(steps, 1):
                console.print(f"  {n}. {step}", markup=False)
        return

    started = time.perf_counter()
    began = datetime.now().astimezone()

    def say(text: str) -> None:
        if not as_json:
            console.print(text, markup=False)

    was_running = server_cmd.running_pid(s) is not None
    say(f"1. stopping the server{'' if was_running else ' (not running)'}")
    if was_running:
        s = server_cmd.restart_settings(s)
        server_cmd.stop(s, quiet=True)
    stash: str | None = None
    if changes:
        say(f'2. git stash push -m "{message}" ({len(changes)} changed file(s))')
        try:
            repo.run("stash", "push", "-m", message)
            stash = repo.run("rev-parse", "stash@{0}").stdout.strip()
        except GitError as exc:
            _restart_after_refusal(s, repo, was_running)
            fail(f"refused: git stash failed, nothing changed: {exc}", REFUSED)
    else:
        say("2. nothing to stash")
    say(f"3. git checkout {ref}")
    try:
        repo.run("checkout", ref)
    except GitError as exc:
        if stash is not None:
            repo.run("stash", "pop", "--index")
        _restart_after_refusal(s, repo, was_running)
        fail(f"refused: git checkout {ref} failed, your work is as it was: {exc}", REFUSED)
    started_ok: bool | None = None
    if not no_start:
        say("4. starting the server")
        started_ok = start_server(s, repo, quiet=as_json) == 0
    else:
        say("4. not starting the server (--no-start)")
    checks = run_checks(s, since=began) if started_ok else []
    failed = started_ok is False or any(c.status == "fail" for c in checks)
    verification = "failed" if failed else ("success" if started_ok else "partial")
    out: dict[str, Any] = {
        "ref": ref,
        "from": head,
        "from_branch": branch,
        "to": target,
        "stash": stash,
        "stash_message": message if stash else None,
        "server_started": started_ok,
        "verification": verification,
        "checks": [
            {"criterion": c.criterion, "status": c.status, "detail": c.detail} for c in checks
        ],
    }
    try:
        out["record_id"] = add_record(
            s,
            feature=f"git {ref}",
            trigger=reason or f"rollback to {ref}",
            method="git",
            duration_ms=(time.perf_counter() - started) * 1000,
            verification=verification,
            changes=[{k: out[k] for k in ("ref", "from", "from_branch", "to", "stash")}],
        )
    except Exception as exc:  # the code rolled back; the record is secondary
        err.print(f"[yellow]could not store the rollback record: {exc}[/yellow]")
        out["record_id"] = None
    if as_json:
        emit_json(out)
    else:
        if checks:
            say("5. verifying")
            print_checklist(checks)
        if stash:
            say(f"Your uncommitted work is in {stash[:12]} ({message}): git stash list")
        say(f"Rolled back to {ref} ({target[:12]}); rollback record {out['record_id']}")
    raise typer.Exit(FAILED if failed else 0)


def _restart_after_refusal(s: Settings, repo: Repo, was_running: bool) -> None:
    """Nothing changed: bring the server back as it was."""
    if was_running:
        start_server(s, repo, quiet=True)
