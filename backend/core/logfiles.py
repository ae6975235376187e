"""The log file and its rotated copies.

Several processes write logs/pcm_ops_tools.log: every uvicorn worker and each `pcm-ops`
command. The standard library's RotatingFileHandler is unsafe there (two processes rotate at
once, or one keeps writing to the renamed file and its lines go to a copy that is then deleted),
so the handler is concurrent-log-handler's: every write takes a lock file
(`logs/.__pcm_ops_tools.lock`), rotates under it when due and reopens the file when another
process has rotated it, so each line is written once, to the file that is current.

By size (PCM_LOG_MAX_BYTES, 10 MiB; 0 turns it off) the copies are pcm_ops_tools.log.1 (the
newest) to .N (PCM_LOG_BACKUPS, 5); by time (PCM_LOG_ROTATE_WHEN: S, M, H, D, midnight or
W0-W6, as logging.handlers.TimedRotatingFileHandler) they carry the date of their period.
All are owner-only (0600).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from concurrent_log_handler import ConcurrentRotatingFileHandler, ConcurrentTimedRotatingFileHandler

from backend.core.filemodes import FILE_MODE, create_private_file

if TYPE_CHECKING:
    from backend.core.config import Settings

DEFAULT_MAX_BYTES = 10 * 1024 * 1024
DEFAULT_BACKUPS = 5
WHEN = r"^$|^(?i:s|m|h|d|midnight|w[0-6])$"


@dataclass(frozen=True, slots=True)
class Rotation:
    """When the log file is rotated, and how many rotated copies are kept."""

    max_bytes: int = DEFAULT_MAX_BYTES
    backups: int = DEFAULT_BACKUPS
    when: str = ""  # empty: by size only

    @classmethod
    def of(cls, settings: Settings) -> Rotation:
        return cls(settings.log_max_bytes, settings.log_backups, settings.log_rotate_when)


def open_handler(path: Path, rotation: Rotation) -> logging.Handler:
    """A handler that appends to `path` and rotates it safely across processes."""
    if rotation.when:
        handler = ConcurrentTimedRotatingFileHandler(
            str(path),
            when=rotation.when,
            backupCount=rotation.backups,
            maxBytes=rotation.max_bytes,
            encoding="utf-8",
            chmod=FILE_MODE,
        )
        # It rotates at once when the period ended while nothing ran; the runbook's
        # `tail -f` and `grep` want a file there before the next line is written.
        create_private_file(path)
        return handler
    return ConcurrentRotatingFileHandler(
        str(path),
        mode="a",
        maxBytes=rotation.max_bytes,
        backupCount=rotation.backups,
        encoding="utf-8",
        chmod=FILE_MODE,
    )


def rotated_copies(path: Path) -> list[Path]:
    """The rotated copies of the log file `path`, oldest first."""

    def age(copy: Path) -> tuple[int, int, str]:
        suffix = copy.name[len(path.name) + 1 :]
        # Written in the same instant: .2 is older than .1.
        number = int(suffix) if suffix.isdigit() else 0
        return (copy.stat().st_mtime_ns, -number, suffix)

    copies = []
    for copy in path.parent.glob(f"{path.name}.*"):
        # A copy being renamed right now (`.rotate.<random>`) is read under its final name.
        if ".rotate." in copy.name[len(path.name) :] or not copy.is_file():
            continue
        copies.append(copy)
    ordered = []
    for copy in copies:
        try:
            ordered.append((age(copy), copy))
        except OSError:
            continue  # deleted meanwhile (the oldest, by a rotation)
    return [copy for _, copy in sorted(ordered)]
