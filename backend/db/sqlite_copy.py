"""The SQLite side of a copy (backend.db.transfer): a new file, verified, swapped in.

The new database is built beside the live file (owner-only), migrated, filled and verified
while nothing reads it; then the live file is backed up through the backup machinery (so it
shows in `pcm-ops db list` and `db restore` brings it back) and replaced atomically by the
swap `db restore` uses, which folds the old WAL into the old file and moves its -wal/-shm
aside, so that no old WAL is ever applied to the new file.
"""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy import make_url
from sqlalchemy.orm import Session

from backend.core.filemodes import create_private_file
from backend.db import backup
from backend.db.backup import BackupError
from backend.db.copy_job import (
    CopyRefused,
    CopyReport,
    Job,
    Mode,
    check_chain,
    check_counts,
    decide,
    insert_rows,
    read_snapshot,
    target_counts,
)
from backend.db.init_db import upgrade_schema
from backend.db.session import make_engine
from backend.db.sqlite_backup import SIDE_FILES, SqliteBackup


def sqlite_path(url: str) -> Path:
    database = make_url(url).database
    if not database or database == ":memory:":
        raise CopyRefused("the SQLite target must be a file, not an in-memory database")
    return Path(database).resolve()


def _remove(path: Path) -> None:
    for side in ("", *SIDE_FILES):
        Path(f"{path}{side}").unlink(missing_ok=True)


def _build(job: Job, new: Path) -> tuple[dict[str, int], int]:
    """The new database file, filled and verified; returns its row counts and audit events."""
    _remove(new)
    create_private_file(new)
    engine = make_engine(f"sqlite:///{new}", busy_timeout=job.settings.database_busy_timeout)
    try:
        upgrade_schema(engine)
        with engine.begin() as conn:
            insert_rows(conn, job)
        with engine.connect() as conn:
            counts = check_counts(conn, job.snapshot)
        with Session(engine) as session:
            events = check_chain(session, job.settings)
        with engine.connect() as conn:
            # A file that stands alone: no -wal beside it to lose or to mix up.
            conn.exec_driver_sql("PRAGMA journal_mode=DELETE")
    finally:
        engine.dispose()
    return counts, events


def _keep_previous(job: Job, path: Path) -> Path:
    """Back the live file up as `db backup` does (listed, restorable); its path."""
    settings = job.settings.model_copy(update={"database_url": f"sqlite:///{path}"})
    try:
        info = backup.take_backup(
            settings, kind="pre-copy", note=f"before the copy from {job.source_shown}"
        )
    except BackupError as exc:
        raise CopyRefused(f"could not back up {path.name} before replacing it: {exc}") from exc
    return settings.backup_dir / info.file


def copy_to_sqlite(job: Job) -> CopyReport:
    """Replace the SQLite file by a verified copy of the source, unless the decision says
    otherwise; refused while another process has the file open (a running server)."""
    path = sqlite_path(job.target_url)
    live = SqliteBackup(path)
    counts: dict[str, int] = {}
    mode: Mode = "copied"
    if live.exists():
        engine = make_engine(f"sqlite:///{path}", busy_timeout=job.settings.database_busy_timeout)
        try:
            with read_snapshot(engine) as conn:
                mode = decide(job, conn)
                counts = target_counts(conn)
        finally:
            engine.dispose()
    if mode != "copied" or job.dry_run:
        return job.report(mode, counts, events=0, verified=False)
    holders = live.holders()
    if holders:
        raise CopyRefused(
            f"{path.name} is open in process(es) {', '.join(map(str, holders))}: "
            "stop the server (./stop.sh) before copying onto the SQLite file"
        )
    new = path.with_name(f".{path.name}.copy")
    try:
        counts, events = _build(job, new)
        kept = _keep_previous(job, path) if live.exists() else None
        try:
            live.replace_with(new)
        except BackupError as exc:
            raise CopyRefused(f"could not swap in the copy: {exc}") from exc
    finally:
        _remove(new)
    os.chmod(path, 0o600)
    return job.report("copied", counts, events=events, verified=True, backup=kept)
