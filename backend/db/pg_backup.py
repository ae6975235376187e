"""PostgreSQL behind the backup interface: pg_dump (custom format) and pg_restore.

pg_dump takes a consistent snapshot in one repeatable-read transaction, so the server keeps
writing while it runs; pg_restore --single-transaction makes the restore all-or-nothing.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from sqlalchemy.engine import make_url

from backend.db.backup import BackupFailed, CorruptBackup, ForeignBackup, Inspection, Progress

MAGIC = b"PGDMP"


class PostgresBackup:
    """The PostgreSQL database at `url`; the password goes through PGPASSWORD, not argv."""

    name = "postgresql"
    suffix = ".dump"

    def __init__(self, url: str) -> None:
        parsed = make_url(url)
        self.password = parsed.password
        self.dsn = parsed.set(drivername="postgresql", password=None).render_as_string(
            hide_password=False
        )

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        env = dict(os.environ)
        if self.password:
            env["PGPASSWORD"] = str(self.password)
        try:
            return subprocess.run(list(args), capture_output=True, text=True, env=env, check=False)
        except FileNotFoundError as exc:
            raise BackupFailed(f"{args[0]} is not installed (PostgreSQL client tools)") from exc

    def exists(self) -> bool:
        return self._run("psql", "--dbname", self.dsn, "-Atc", "SELECT 1").returncode == 0

    def copy_to(self, dest: Path, progress: Progress | None) -> None:
        done = self._run("pg_dump", "--format=custom", "--file", str(dest), "--dbname", self.dsn)
        if done.returncode != 0:
            raise BackupFailed(f"pg_dump failed: {done.stderr.strip()}")
        if progress is not None:
            progress(1, 1)

    def _listing(self, path: Path) -> str:
        with path.open("rb") as fh:
            if fh.read(len(MAGIC)) != MAGIC:
                raise ForeignBackup(f"{path.name} is not a pg_dump custom-format archive")
        listed = self._run("pg_restore", "--list", str(path))
        if listed.returncode != 0:
            raise CorruptBackup(f"{path.name} cannot be read: {listed.stderr.strip()}")
        return listed.stdout

    def inspect(self, path: Path) -> Inspection:
        listing = self._listing(path)
        tables: set[str] = set()
        for line in listing.splitlines():
            parts = line.split()
            # "215; 1259 16390 TABLE public feature_flags owner"
            if line.startswith(";") or "TABLE" not in parts:
                continue
            at = parts.index("TABLE")
            if len(parts) > at + 2 and parts[at + 1] != "DATA":
                tables.add(parts[at + 2])
        missing = {"alembic_version", "feature_flags", "flag_store"} - tables
        if missing:
            raise ForeignBackup(
                f"{path.name} is not a PCM-Ops Tools dump (tables {', '.join(sorted(missing))} "
                "missing)"
            )
        return Inspection("ok (pg_restore --list)")

    def inspect_live(self) -> Inspection:
        query = "SELECT version_num FROM alembic_version"
        done = self._run("psql", "--dbname", self.dsn, "-Atc", query)
        if done.returncode != 0:
            raise CorruptBackup(f"the live database cannot be read: {done.stderr.strip()}")
        return Inspection("ok (readable)", sorted(done.stdout.split()))

    def holders(self) -> list[int]:
        # Other clients of a PostgreSQL server are not local processes; the pid file covers ours.
        return []

    def replace_with(self, path: Path) -> None:
        done = self._run(
            "pg_restore",
            "--clean",
            "--if-exists",
            "--no-owner",
            "--single-transaction",
            "--exit-on-error",
            "--dbname",
            self.dsn,
            str(path),
        )
        if done.returncode != 0:
            raise BackupFailed(f"pg_restore failed (nothing changed): {done.stderr.strip()}")

    def preserve(self, dest: Path) -> list[Path]:
        # Nothing to copy by hand: the server owns the files.
        return []
