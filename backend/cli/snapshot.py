"""`pcm-ops snapshot`: the runbook's "Before Making Changes" in one command.

A git tag `working-state-YYYYMMDD` (suffixed -2, -3… when taken), a verified database backup
and, when the server answers, a response-time baseline; recorded together in data/snapshots.json.
"""

from __future__ import annotations

import shlex
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from backend.cli.client import ServerDown
from backend.cli.console import (
    BAD_INPUT,
    REFUSED,
    JsonOpt,
    backup_exit,
    console,
    emit_json,
    fail,
    load_settings,
    print_table,
)
from backend.cli.gitops import GitError, repo_for
from backend.cli.verify import record_baseline
from backend.db import backup
from backend.db.backup import BackupError
from backend.db.manifest import Manifest


def free_tag(repo_tags: set[str], base: str) -> str:
    if base not in repo_tags:
        return base
    n = 2
    while f"{base}-{n}" in repo_tags:
        n += 1
    return f"{base}-{n}"


def snapshot(
    name: Annotated[
        str | None, typer.Option("--name", help="Tag name (default working-state-YYYYMMDD).")
    ] = None,
    note: Annotated[str, typer.Option(help="What you are about to change.")] = "",
    repo_dir: Annotated[
        Path | None, typer.Option("--repo", help="The git repository (default PCM_REPO_DIR).")
    ] = None,
    list_: Annotated[bool, typer.Option("--list", help="List the recorded snapshots.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Tag the code and back up the database together, before making a change."""
    s = load_settings()
    snapshots = Manifest(s.snapshots_file)
    if list_:
        show(snapshots.entries(), as_json)
        return
    repo = repo_for(s, repo_dir)
    base = name or f"working-state-{datetime.now():%Y%m%d}"
    if repo.run("check-ref-format", f"refs/tags/{base}", check=False).returncode != 0:
        fail(f"{base!r} is not a valid tag name", BAD_INPUT)
    tags = set(repo.run("tag", "--list").stdout.split())
    if name is not None and name in tags:
        fail(f"refused: tag {name!r} already exists (omit --name for a dated one)", REFUSED)
    tag = free_tag(tags, base)
    head, branch = repo.head()
    dirty = repo.changes()
    try:
        info = backup.take_backup(s, kind="snapshot", note=f"snapshot {tag} {note}".strip())
    except BackupError as exc:
        backup_exit(exc)
    try:
        repo.run("tag", tag, head)
    except GitError as exc:
        fail(f"the backup {info.file} was taken but tagging failed: {exc}")
    try:
        baseline: dict[str, Any] | None = record_baseline(s)
    except ServerDown:
        baseline = None
    entry = {
        "tag": tag,
        "commit": head,
        "branch": branch,
        "created_at": datetime.now(UTC).isoformat(),
        "repo": str(repo.path),
        "backup": info.file,
        "backup_sha256": info.sha256,
        "uncommitted_files": len(dirty),
        "baseline_ms": baseline["median_ms"] if baseline else None,
        "note": note,
    }
    snapshots.append(entry)
    if as_json:
        emit_json(entry)
        return
    console.print(f"✅ Snapshot {tag}", markup=False)
    console.print(
        f"   git tag {tag} -> {head[:12]}{f' ({branch})' if branch else ''}", markup=False
    )
    console.print(f"   database backup {info.file} (sha256 {info.sha256[:16]}…)", markup=False)
    if baseline:
        console.print(f"   response-time baseline {baseline['median_ms']:.2f} ms (/api/health)")
    else:
        console.print(
            "   no baseline: the server is not running (pcm-ops verify --record-baseline)"
        )
    if dirty:
        console.print(
            f"[yellow]   {len(dirty)} uncommitted change(s) are not in the tag; "
            "commit them first if they are part of the working state[/yellow]"
        )
    where = repo.path if repo_dir is not None else None
    console.print(f"   to go back: {go_back(tag, info.file, where)}", markup=False)


def go_back(tag: str, backup_file: str, repo_dir: Path | None) -> str:
    """The commands that return to a snapshot, runnable as printed: the database first, with
    the server stopped and left stopped (`rollback db` refuses a running server without
    --stop), then the code, whose rollback starts the server and verifies it."""
    me = sys.argv[0] if Path(sys.argv[0]).name == "pcm-ops" and "/" in sys.argv[0] else "pcm-ops"
    repo = f" --repo {shlex.quote(str(repo_dir))}" if repo_dir is not None else ""
    return (
        f"{shlex.quote(me)} rollback db {shlex.quote(backup_file)} --stop --no-start"
        f" && {shlex.quote(me)} rollback git {shlex.quote(tag)}{repo}"
    )


def show(entries: list[dict[str, Any]], as_json: bool) -> None:
    if as_json:
        emit_json(entries)
        return
    rows = [
        (
            e["tag"],
            e["commit"][:12],
            e["created_at"][:19].replace("T", " "),
            e["backup"],
            f"{e['baseline_ms']:.2f} ms" if e.get("baseline_ms") else "-",
            e.get("note", ""),
        )
        for e in reversed(entries)
    ]
    headers = ("tag", "commit", "created", "backup", "baseline", "note")
    print_table(headers, rows, ids={"tag", "commit", "backup"})
