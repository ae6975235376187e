"""SQLite behind the backup interface: online backup API, integrity check, atomic swap."""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path

from backend.db.backup import (
    REQUIRED_TABLES,
    BackupFailed,
    CorruptBackup,
    ForeignBackup,
    Inspection,
    Progress,
    fsync_dir,
    sha256_of,
)

MAGIC = b"SQLite format 3\x00"
PAGES_PER_STEP = 1024
SIDE_FILES = ("-wal", "-shm", "-journal")


@contextlib.contextmanager
def _connect(uri: str) -> Iterator[sqlite3.Connection]:
    conn = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=10)
    try:
        yield conn
    finally:
        conn.close()


def _inspect(conn: sqlite3.Connection, label: str) -> Inspection:
    try:
        rows = [r[0] for r in conn.execute("PRAGMA integrity_check(20)")]
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    except sqlite3.DatabaseError as exc:
        raise CorruptBackup(f"{label} is damaged: {exc}") from exc
    if rows != ["ok"]:
        raise CorruptBackup(f"{label} failed PRAGMA integrity_check: {'; '.join(rows[:5])}")
    missing = REQUIRED_TABLES - tables
    if missing:
        raise ForeignBackup(
            f"{label} is an SQLite database but not a PCM-Ops Tools one "
            f"(tables {', '.join(sorted(missing))} missing)"
        )
    schema = sorted(r[0] for r in conn.execute("SELECT version_num FROM alembic_version"))
    flags = conn.execute("SELECT count(*) FROM feature_flags").fetchone()[0]
    return Inspection("ok", schema, int(flags))


class _Flusher:
    """Writes each step of the copy to disk before the next one.

    Without it the copy piles up hundreds of MB of dirty pages, and the server's next commit
    (an fsync of its WAL, synchronous=FULL) waits for the file system to write them all:
    a measured stall of ~100 ms per 100 MB. Flushing every step bounds that wait.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd: int | None = None

    def flush(self) -> None:
        if self.fd is None:
            try:
                self.fd = os.open(self.path, os.O_RDONLY)
            except FileNotFoundError:
                return
        os.fdatasync(self.fd)

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


class SqliteBackup:
    """The SQLite file at `path` (WAL mode, as backend.db.session opens it)."""

    name = "sqlite"
    suffix = ".db"

    def __init__(self, path: Path) -> None:
        self.path = path

    def exists(self) -> bool:
        return self.path.is_file() and self.path.stat().st_size > 0

    def copy_to(self, dest: Path, progress: Progress | None) -> None:
        dest.unlink(missing_ok=True)
        try:
            self._copy(dest, progress)
        except sqlite3.DatabaseError as exc:
            raise BackupFailed(f"SQLite backup of {self.path} failed: {exc}") from exc
        with dest.open("rb+") as fh:
            os.fsync(fh.fileno())

    def _copy(self, dest: Path, progress: Progress | None) -> None:
        with _connect(f"{self.path.as_uri()}?mode=rw") as src, _connect(dest.as_uri()) as out:
            wal = src.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
            # One read transaction held across every step: the copy is one consistent snapshot,
            # the backup never restarts when another connection commits, and in WAL mode the
            # writers are not blocked by it. (Without it, each step would see new commits and
            # a busy database would be copied over and over.)
            src.execute("BEGIN")
            src.execute("SELECT count(*) FROM sqlite_master").fetchone()

            flusher = _Flusher(dest)

            def step(_status: int, remaining: int, total: int) -> None:
                flusher.flush()
                if progress is not None:
                    progress(total - remaining, total)

            try:
                src.backup(out, pages=PAGES_PER_STEP if wal else -1, progress=step)
            finally:
                flusher.close()
                src.execute("COMMIT")
            # A backup file stands alone: no -wal beside it to lose.
            out.execute("PRAGMA journal_mode=DELETE")

    def inspect(self, path: Path) -> Inspection:
        try:
            with path.open("rb") as fh:
                header = fh.read(len(MAGIC))
        except OSError as exc:
            raise ForeignBackup(f"{path} cannot be read: {exc}") from exc
        if header != MAGIC:
            raise ForeignBackup(f"{path.name} is not an SQLite database (wrong file header)")
        # immutable: read the file as it is, create no -wal/-shm beside a backup.
        with _connect(f"{path.resolve().as_uri()}?mode=ro&immutable=1") as conn:
            return _inspect(conn, path.name)

    def inspect_live(self) -> Inspection:
        if not self.exists():
            raise CorruptBackup(
                f"there is no database at {self.path} (restore one: ./pcm-ops db restore FILE)"
            )
        with _connect(f"{self.path.as_uri()}?mode=ro") as conn:
            return _inspect(conn, f"the live database {self.path.name}")

    def holders(self) -> list[int]:
        watched = {str(self.path)} | {f"{self.path}{s}" for s in SIDE_FILES}
        me = os.getpid()
        found: list[int] = []
        with contextlib.suppress(OSError):
            for proc in Path("/proc").iterdir():
                if not proc.name.isdigit() or int(proc.name) == me:
                    continue
                try:
                    fds = list((proc / "fd").iterdir())
                except OSError:  # gone, or not ours to look at
                    continue
                for fd in fds:
                    with contextlib.suppress(OSError):
                        if os.readlink(fd) in watched:
                            found.append(int(proc.name))
                            break
        return sorted(found)

    def _checkpoint(self) -> None:
        """Fold the WAL into the file, so that no stale -wal is left beside the new file."""
        if not self.exists():
            return
        with contextlib.suppress(sqlite3.DatabaseError), _connect(self.path.as_uri()) as conn:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def replace_with(self, path: Path) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        staged = self.path.with_name(f".{self.path.name}.restore")
        try:
            shutil.copyfile(path, staged)
            with staged.open("rb+") as fh:
                os.fsync(fh.fileno())
            if sha256_of(staged) != sha256_of(path):
                raise BackupFailed(f"the staged copy of {path.name} differs from it")
            os.chmod(staged, 0o600)
            self._checkpoint()
            # A -wal left from the old file would be replayed onto the new one: move it away
            # first (SQLite cannot tell that a WAL belongs to another database file).
            for side in SIDE_FILES:
                old = Path(f"{self.path}{side}")
                if old.exists():
                    os.replace(old, self.path.with_name(f".{self.path.name}.replaced{side}"))
            os.replace(staged, self.path)  # atomic: readers see the old file or the new one
            fsync_dir(self.path.parent)
        except OSError as exc:
            raise BackupFailed(f"could not swap in {path.name}: {exc}") from exc
        finally:
            staged.unlink(missing_ok=True)

    def preserve(self, dest: Path) -> list[Path]:
        kept: list[Path] = []
        for side in ("", *SIDE_FILES):
            src = Path(f"{self.path}{side}")
            if src.exists():
                target = Path(f"{dest}.db{side}")
                shutil.copy2(src, target)
                kept.append(target)
        return kept
