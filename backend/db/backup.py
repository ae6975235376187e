"""Database backup and restore behind one interface, verified, hashed and recorded.

SQLite is served by its online backup API (the server keeps writing); PostgreSQL by
pg_dump/pg_restore (backend/db/pg_backup.py). Every backup is integrity-checked before it gets
its final name, and recorded with size and SHA-256 in data/backups.json, outside the database,
so that the list survives a restore.

BackupError
├── BackupNotFound      no such backup
├── BackupRejected      the file must not be restored
│   ├── CorruptBackup   integrity check or SHA-256 failed
│   └── ForeignBackup   not a database of this engine, or not PCM-Ops Tools' schema
├── DatabaseInUse       the server or another process has the database open
└── BackupFailed        the backup or the swap itself failed
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from backend.core.config import Settings
from backend.db.manifest import Manifest

log = logging.getLogger("pcm_ops_tools.backup")

PREFIX = "pcm_ops_tools_backup_"
# Tables without which a file is not a PCM-Ops Tools database.
REQUIRED_TABLES = frozenset({"alembic_version", "feature_flags", "flag_store"})

Progress = Callable[[int, int], None]
"""Called with (done, total) units of work while a backup runs."""


class BackupError(Exception):
    """Base of every backup and restore error."""


class BackupNotFound(BackupError):
    """No backup by that name or path."""


class BackupRejected(BackupError):
    """The file is not a sound PCM-Ops Tools database and must not be restored."""


class CorruptBackup(BackupRejected):
    """The integrity check or the recorded SHA-256 failed."""


class ForeignBackup(BackupRejected):
    """Not a database of this engine, or not PCM-Ops Tools' schema."""


class DatabaseInUse(BackupError):
    """The server or another process has the database open."""


class BackupFailed(BackupError):
    """The backup or the swap could not be completed."""


@dataclass(frozen=True, slots=True)
class Inspection:
    """What a check found in a database file."""

    integrity: str
    schema: list[str] = field(default_factory=list)
    flags: int = 0


class BackupEngine(Protocol):
    """What backup and restore need from a database engine."""

    name: str
    suffix: str

    def exists(self) -> bool:
        """Whether there is a database to back up."""
        ...

    def copy_to(self, dest: Path, progress: Progress | None) -> None:
        """Write a consistent copy of the live database to `dest` while it stays in use."""
        ...

    def inspect(self, path: Path) -> Inspection:
        """Check a backup file; raise CorruptBackup or ForeignBackup."""
        ...

    def inspect_live(self) -> Inspection:
        """Check the live database; raise CorruptBackup when it is damaged."""
        ...

    def holders(self) -> list[int]:
        """Ids of other processes that have the database open (empty when unknown)."""
        ...

    def replace_with(self, path: Path) -> None:
        """Make `path`'s content the live database, atomically."""
        ...

    def preserve(self, dest: Path) -> list[Path]:
        """Copy the raw files of a database too damaged to back up; returns what was kept."""
        ...


@dataclass(frozen=True, slots=True)
class BackupInfo:
    """One backup as recorded in the manifest."""

    file: str
    created_at: str
    engine: str
    size: int
    sha256: str
    integrity: str
    kind: str = "manual"
    note: str = ""
    schema: list[str] = field(default_factory=list)
    duration_ms: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BackupInfo:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


@dataclass(frozen=True, slots=True)
class Listing:
    """A backup seen by `db list`: recorded, on disk, or both."""

    file: str
    status: str  # "ok", "missing" (recorded, file gone) or "unrecorded" (file, no record)
    info: BackupInfo | None
    size: int | None
    mtime: float | None


@dataclass(frozen=True, slots=True)
class CheckReport:
    path: Path
    size: int
    sha256: str
    inspection: Inspection
    recorded: BackupInfo | None


@dataclass(frozen=True, slots=True)
class RestoreReport:
    restored_from: Path
    pre_restore: BackupInfo | None
    preserved: list[Path]
    integrity: str
    duration_ms: float


def backup_engine(settings: Settings) -> BackupEngine:
    """The engine that serves the configured database."""
    url = settings.effective_database_url
    if url.startswith("sqlite"):
        from backend.db.sqlite_backup import SqliteBackup

        return SqliteBackup(settings.sqlite_path if settings.database_url is None else _path(url))
    if url.startswith("postgresql"):
        from backend.db.pg_backup import PostgresBackup

        return PostgresBackup(url)
    raise BackupError(f"no backup engine for {url.split(':', 1)[0]} databases")


def _path(sqlite_url: str) -> Path:
    from sqlalchemy.engine import make_url

    database = make_url(sqlite_url).database
    if not database or database == ":memory:":
        raise BackupError("an in-memory SQLite database cannot be backed up")
    return Path(database).resolve()


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def manifest(settings: Settings) -> Manifest:
    return Manifest(settings.backup_manifest)


def recorded(settings: Settings) -> dict[str, BackupInfo]:
    return {e["file"]: BackupInfo.from_dict(e) for e in manifest(settings).entries()}


def _new_path(settings: Settings, engine: BackupEngine, stamp: datetime) -> Path:
    base = f"{PREFIX}{stamp:%Y%m%d_%H%M%S}"
    path = settings.backup_dir / f"{base}{engine.suffix}"
    n = 2
    while path.exists():  # two backups in one second: suffix the second
        path = settings.backup_dir / f"{base}_{n}{engine.suffix}"
        n += 1
    return path


def take_backup(
    settings: Settings, *, kind: str = "manual", note: str = "", progress: Progress | None = None
) -> BackupInfo:
    """Back up the live database online, verify the copy, then record it."""
    engine = backup_engine(settings)
    if not engine.exists():
        raise BackupNotFound(
            "there is no database to back up: restore one with `./pcm-ops db restore FILE`"
            " (`./pcm-ops db list` shows the backups), or set one up with `./pcm-ops db init`"
        )
    settings.backup_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    now = datetime.now().astimezone()
    dest = _new_path(settings, engine, now)
    partial = dest.with_name(f".{dest.name}.partial")
    try:
        engine.copy_to(partial, progress)
        inspection = engine.inspect(partial)
        os.chmod(partial, 0o600)  # holds token hashes and credentials
        os.replace(partial, dest)
        fsync_dir(dest.parent)
    except BackupRejected as exc:
        raise BackupFailed(f"the backup copy failed its check and was removed: {exc}") from exc
    except OSError as exc:
        raise BackupFailed(f"could not write the backup {dest}: {exc}") from exc
    finally:
        partial.unlink(missing_ok=True)
    info = BackupInfo(
        file=dest.name,
        created_at=now.astimezone(UTC).isoformat(),
        engine=engine.name,
        size=dest.stat().st_size,
        sha256=sha256_of(dest),
        integrity=inspection.integrity,
        kind=kind,
        note=note,
        schema=inspection.schema,
        duration_ms=round((time.perf_counter() - started) * 1000, 1),
    )
    manifest(settings).append(info.as_dict())
    log.info(
        "Database backup %s written (%s, %d bytes, sha256 %s, integrity %s, %.0f ms)",
        dest,
        kind,
        info.size,
        info.sha256[:16],
        info.integrity,
        info.duration_ms,
    )
    return info


def resolve(settings: Settings, name: str | Path) -> Path:
    """A backup given by file name (in the backup directory) or by path."""
    candidate = Path(name).expanduser()
    for path in (candidate, settings.backup_dir / candidate.name):
        if path.is_file():
            return path.resolve()
    raise BackupNotFound(f"no backup {str(name)!r} (see `./pcm-ops db list`)")


def check_backup(settings: Settings, path: Path) -> CheckReport:
    """Refuse (raise) unless `path` is a sound PCM-Ops Tools database and matches its record."""
    engine = backup_engine(settings)
    info = recorded(settings).get(path.name) if path.parent == settings.backup_dir else None
    digest = sha256_of(path)
    if info is not None and info.sha256 != digest:
        raise CorruptBackup(
            f"{path.name}: SHA-256 {digest[:16]}… differs from the one recorded when it was "
            f"taken ({info.sha256[:16]}…): the file changed since"
        )
    inspection = engine.inspect(path)
    return CheckReport(path, path.stat().st_size, digest, inspection, info)


def list_backups(settings: Settings) -> list[Listing]:
    """Recorded backups and backup files on disk, newest first."""
    records = recorded(settings)
    files = {p.name: p for p in settings.backup_dir.glob(f"{PREFIX}*") if p.is_file()}
    out: list[Listing] = []
    for name in set(records) | set(files):
        path = files.get(name)
        stat = path.stat() if path is not None else None
        status = "ok" if name in records and path else ("missing" if path is None else "unrecorded")
        out.append(
            Listing(
                name,
                status,
                records.get(name),
                stat.st_size if stat else None,
                stat.st_mtime if stat else None,
            )
        )

    def when(item: Listing) -> float:
        if item.info is not None:
            return datetime.fromisoformat(item.info.created_at).timestamp()
        return item.mtime or 0.0

    return sorted(out, key=when, reverse=True)


def prune_backups(settings: Settings, *, keep: int, dry_run: bool = False) -> list[str]:
    """Delete all but the newest `keep` backups (files and records); returns the deleted names."""
    if keep < 0:
        raise ValueError("keep must be 0 or more")
    doomed = [item.file for item in list_backups(settings)[keep:]]
    if dry_run or not doomed:
        return doomed
    for name in doomed:
        (settings.backup_dir / name).unlink(missing_ok=True)
    gone = set(doomed)
    manifest(settings).update(lambda entries: [e for e in entries if e.get("file") not in gone])
    log.info("Database backups pruned (kept %d): %s", keep, ", ".join(doomed))
    return doomed


def restore_backup(
    settings: Settings, path: Path, *, progress: Progress | None = None
) -> RestoreReport:
    """Replace the live database with a checked backup, after backing the current one up.

    The caller stops the server first; any process that still has the database open is refused.
    """
    started = time.perf_counter()
    check_backup(settings, path)
    engine = backup_engine(settings)
    holders = engine.holders()
    if holders:
        raise DatabaseInUse(
            "the database is open in process(es) "
            f"{', '.join(map(str, holders))}; stop them before restoring"
        )
    pre: BackupInfo | None = None
    preserved: list[Path] = []
    if engine.exists():
        try:
            pre = take_backup(
                settings,
                kind="pre-restore",
                note=f"before restoring {path.name}",
                progress=progress,
            )
        except BackupError as exc:
            # The database is what broke: keep its raw files as evidence, then restore.
            stamp = f"{datetime.now():%Y%m%d_%H%M%S}"
            preserved = engine.preserve(settings.backup_dir / f"pcm_ops_tools_damaged_{stamp}")
            log.warning("Current database could not be backed up (%s); kept %s", exc, preserved)
    engine.replace_with(path)
    inspection = engine.inspect_live()
    report = RestoreReport(
        restored_from=path,
        pre_restore=pre,
        preserved=preserved,
        integrity=inspection.integrity,
        duration_ms=round((time.perf_counter() - started) * 1000, 1),
    )
    log.warning(
        "Database restored from %s (pre-restore backup %s, integrity %s, %.0f ms)",
        path,
        pre.file if pre else "none",
        report.integrity,
        report.duration_ms,
    )
    return report
