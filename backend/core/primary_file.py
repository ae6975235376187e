"""Which database is the primary: a small owner-only JSON file in the data directory.

The `postgresql_support` flag switches the primary database between the SQLite file and the
PostgreSQL database named by PCM_POSTGRES_URL; the switch happens at start-up, and this file
records its outcome, so that every command (the CLI's direct access, `db status`, the
runbook's `from backend.db.session import engine`) opens the database the server uses, without
asking a database which database to ask. Standard library only: the settings read it.

Fields:
- backend: "sqlite" or "postgresql", the primary now;
- switched_at: when the primary last changed (ISO 8601, UTC);
- synced_at: when the two sides were last made equal (a copy or a sync), or null;
- unsynced_since: set when the app came up on SQLite without the writes made on PostgreSQL
  since `synced_at` (PostgreSQL was unreachable at the switch); `pcm-ops db sync --from
  postgresql` brings them back and clears it;
- note: one line saying what the last switch did (or why it did not happen).
A missing or unreadable file means SQLite, never a guess at PostgreSQL.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal, cast

Backend = Literal["sqlite", "postgresql"]
BACKENDS: tuple[Backend, ...] = ("sqlite", "postgresql")


def other(backend: Backend) -> Backend:
    return "postgresql" if backend == "sqlite" else "sqlite"


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


@dataclass(frozen=True)
class PrimaryState:
    backend: Backend = "sqlite"
    switched_at: str | None = None
    synced_at: str | None = None
    unsynced_since: str | None = None
    note: str = ""

    def but(self, **changes: object) -> PrimaryState:
        return replace(self, **changes)  # type: ignore[arg-type]


def read(path: Path) -> PrimaryState:
    """The recorded state; the SQLite default when the file is missing or unreadable."""
    try:
        raw = json.loads(path.read_text())
        backend = raw.get("backend", "sqlite")
        if backend not in BACKENDS:
            return PrimaryState()
        return PrimaryState(
            backend=cast(Backend, backend),
            switched_at=raw.get("switched_at"),
            synced_at=raw.get("synced_at"),
            unsynced_since=raw.get("unsynced_since"),
            note=str(raw.get("note", "")),
        )
    except (OSError, ValueError, AttributeError, TypeError):
        return PrimaryState()


def primary_of(path: Path) -> Backend:
    return read(path).backend


def write(path: Path, state: PrimaryState) -> None:
    """Write the state atomically (a crash leaves the old or the new file), mode 0600."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(asdict(state), fh, indent=1)
        fh.write("\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
