"""JSON lists of records kept beside the database (backups, snapshots).

They live outside the database on purpose: restoring a backup replaces the database, and the
list of backups must survive that. Writes are atomic (temp file, fsync, rename) and serialized
between processes with an flock on a sibling lock file.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

Entry = dict[str, Any]


class Manifest:
    """An append-mostly JSON list of dicts in one file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        lock = self.path.with_name(f".{self.path.name}.lock")
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock

    def entries(self) -> list[Entry]:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return []
        except (OSError, ValueError) as exc:
            raise ValueError(f"{self.path} is unreadable: {exc}") from exc
        return [e for e in data.get("entries", []) if isinstance(e, dict)]

    def _write(self, entries: list[Entry]) -> None:
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        # Owner-only whatever the umask: the list names every backup of the database.
        with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as fh:
            json.dump({"entries": entries}, fh, indent=2, default=str)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)

    def append(self, entry: Entry) -> None:
        with self._locked():
            entries = self.entries()
            entries.append(entry)
            self._write(entries)

    def update(self, change: Callable[[list[Entry]], list[Entry]]) -> None:
        """Rewrite the list through `change`, under the lock."""
        with self._locked():
            self._write(change(self.entries()))
