"""`pcm-ops logs [--flags] [--errors] [--follow]`: the runbook's log greps, with times, over
the log file and, for lines older than its last rotation, its rotated copies.

tail -F logs/pcm_ops_tools.log                                   -> pcm-ops logs --follow
grep "Feature flag" logs/pcm_ops_tools.log | tail -20            -> pcm-ops logs --flags
grep -i "error\\|exception\\|failed" logs/pcm_ops_tools.log | tail -10 -> pcm-ops logs --errors
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, TextIO

import typer

from backend.cli.console import (
    BAD_INPUT,
    NOT_FOUND,
    JsonOpt,
    console,
    emit_json,
    fail,
    load_settings,
)
from backend.core.logfiles import rotated_copies
from backend.flags.outcomes import REASON_MARK

ERROR_PATTERN = re.compile(r"error|exception|failed", re.IGNORECASE)
FLAG_PATTERN = re.compile(r"Feature flag")
# backend.core.log's format starts with asctime: "2025-08-24 13:05:09,123 LEVEL ..."
STAMP = re.compile(r"^(\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}),(\d{3}) ")
ENTRY = re.compile(r"^\S+ \S+ ([A-Z]+) \[pid \d+\] ([\w.]+): (.*)$")
# Names, not words: a flag (`enhanced_error_handling`), a path or a field with an underscore.
IDENTIFIER = re.compile(r"[\w./-]*_[\w./-]*")
RELATIVE = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhd])$")
UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """A moment given as "10m"/"2h"/"1d", "HH:MM" (today) or an ISO date-time (local time)."""
    now = now or datetime.now().astimezone()
    value = text.strip()
    relative = RELATIVE.match(value)
    if relative:
        amount, unit = float(relative.group(1)), relative.group(2)
        return now - timedelta(**{UNITS[unit]: amount})
    try:
        if re.fullmatch(r"\d{1,2}:\d{2}(:\d{2})?", value):
            clock = datetime.strptime(value if value.count(":") == 2 else value + ":00", "%H:%M:%S")
            moment = now.replace(
                hour=clock.hour, minute=clock.minute, second=clock.second, microsecond=0
            )
        else:
            moment = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(
            f"cannot read the time {text!r}: use 10m, 2h, 1d, HH:MM or 2025-08-24T13:05"
        ) from None
    return moment.astimezone() if moment.tzinfo is None else moment


def line_time(line: str) -> datetime | None:
    stamp = STAMP.match(line)
    if stamp is None:
        return None
    moment = datetime.strptime(stamp.group(1), "%Y-%m-%d %H:%M:%S")
    return moment.replace(microsecond=int(stamp.group(2)) * 1000).astimezone()


def entries(
    lines: Iterable[str], since: datetime | None = None
) -> Iterator[tuple[datetime | None, str]]:
    """Lines of the log with their time; a traceback line takes the time of its entry."""
    current: datetime | None = None
    for raw in lines:
        line = raw.rstrip("\n")
        current = line_time(line) or current
        if since is None or (current is not None and current >= since):
            yield current, line


def said(logger: str, message: str) -> str:
    """What a message says in our own words: without identifiers (flag names such as
    `enhanced_error_handling`, paths) and without the text an operator typed (a flag
    change's reason: "error rate > 50%" is why a rollback was made, not an error)."""
    if logger.startswith("pcm_ops_tools") and message.startswith("Feature flag "):
        message = message.split(REASON_MARK, 1)[0]
    return IDENTIFIER.sub(" ", message)


def is_error(line: str) -> bool:
    """An ERROR/CRITICAL entry, or the runbook's pattern in what a message says (not in the
    logger's name: uvicorn's general logger is `uvicorn.error`, nor in the flag names or
    reasons of a change); a line without the prefix (a traceback's) by the pattern alone."""
    entry = ENTRY.match(line)
    if entry is None:
        return bool(ERROR_PATTERN.search(line))
    level, logger, message = entry.groups()
    return level in ("ERROR", "CRITICAL") or bool(ERROR_PATTERN.search(said(logger, message)))


def matches(line: str, *, flags: bool, errors: bool) -> bool:
    if not flags and not errors:
        return True
    return bool((flags and FLAG_PATTERN.search(line)) or (errors and is_error(line)))


def _stamped(path: Path) -> datetime | None:
    """When `path` was last written (local time), None when it is gone."""
    try:
        return datetime.fromtimestamp(path.stat().st_mtime).astimezone()
    except OSError:
        return None


def _read(
    path: Path, since: datetime | None, *, flags: bool, errors: bool
) -> tuple[list[str], int | None]:
    """The matching lines of one file, and its inode (None when it is gone)."""
    try:
        with path.open(errors="replace") as fh:
            found = [
                line for _, line in entries(fh, since) if matches(line, flags=flags, errors=errors)
            ]
            return found, os.fstat(fh.fileno()).st_ino
    except FileNotFoundError:
        return [], None


def older_lines(
    path: Path,
    since: datetime | None,
    *,
    flags: bool,
    errors: bool,
    wanted: int | None,
    skip: int | None,
) -> list[str]:
    """Matching lines of the rotated copies of `path`, oldest first: newest copies first until
    `wanted` lines (all when None) are found or the copies are older than `since`. `skip` is
    the inode of the current file already read (renamed into a copy meanwhile)."""
    chunks: list[list[str]] = []
    total = 0
    for copy in reversed(rotated_copies(path)):
        if wanted is not None and total >= wanted:
            break
        written = _stamped(copy)
        if since is not None and (written is None or written < since):
            break  # this copy and every older one end before `since`
        found, inode = _read(copy, since, flags=flags, errors=errors)
        if inode is not None and inode != skip:
            chunks.append(found)
            total += len(found)
    return [line for chunk in reversed(chunks) for line in chunk]


def error_lines(path: Path, since: datetime) -> list[str]:
    """The runbook's error grep, limited to entries written at or after `since`, in the log
    file and the copies rotated since then."""
    if not path.exists():
        return []
    current, inode = _read(path, since, flags=False, errors=True)
    return older_lines(path, since, flags=False, errors=True, wanted=None, skip=inode) + current


def _replaced(path: Path, fh: TextIO) -> bool:
    """Has `path` been rotated away from the file `fh` reads (a new file in its place)?"""
    try:
        return path.stat().st_ino != os.fstat(fh.fileno()).st_ino
    except FileNotFoundError:
        return False  # renamed, the new one not created yet: the old one is still complete


def _rotated_between(path: Path, old: int, new: int) -> list[Path]:
    """The rotated copies of `path` newer than the file with inode `old` and older than the
    one with inode `new`, oldest first; none when `old` is no longer among them."""
    found: list[tuple[Path, int]] = []
    for copy in rotated_copies(path):
        with contextlib.suppress(OSError):
            found.append((copy, copy.stat().st_ino))
    inodes = [inode for _, inode in found]
    if old not in inodes:
        return []
    between = []
    for copy, inode in found[inodes.index(old) + 1 :]:
        if inode == new:
            break
        between.append(copy)
    return between


def follow(path: Path, fh: TextIO, *, flags: bool, errors: bool) -> None:
    """Print lines as they are appended to `path` (tail -F), from where `fh` stands; goes on in
    the new file when the log is rotated, and from the start when it is truncated."""
    pending = ""
    try:
        while True:
            pending += fh.readline()
            if pending.endswith("\n"):
                line, pending = pending, ""
                if matches(line, flags=flags, errors=errors):
                    console.print(line.rstrip("\n"), markup=False)
                continue
            # At the end, maybe with half a line: wait for the writer to finish it.
            if _replaced(path, fh):
                # Rotated: nothing is written to the old file after its rename, so what is
                # left in it now is all of it; then the copies rotated since (several
                # rotations between two looks), then the new file.
                pending += fh.read()
                old = os.fstat(fh.fileno()).st_ino
                fh.close()
                fh = path.open(errors="replace")
                for copy in _rotated_between(path, old, os.fstat(fh.fileno()).st_ino):
                    with contextlib.suppress(OSError):
                        pending += copy.read_text(errors="replace")
                for line in pending.splitlines():
                    if matches(line, flags=flags, errors=errors):
                        console.print(line, markup=False)
                pending = ""
                continue
            if path.exists() and path.stat().st_size < fh.tell():
                fh.seek(0)  # the log was truncated in place
                pending = ""
            time.sleep(0.2)
    finally:
        fh.close()


def logs(
    flags: Annotated[bool, typer.Option("--flags", help='Only "Feature flag" lines.')] = False,
    errors: Annotated[
        bool, typer.Option("--errors", help="Only error/exception/failed lines.")
    ] = False,
    follow_: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new lines (Ctrl-C stops).")
    ] = False,
    lines: Annotated[
        int | None, typer.Option("--lines", "-n", min=1, help="How many (20; 10 with --errors).")
    ] = None,
    since: Annotated[
        str | None, typer.Option(help="Only since this time (10m, 2h, HH:MM, ISO).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """The runbook's log monitoring: tail, Feature flag lines, error patterns."""
    s = load_settings()
    path = s.log_file
    if not path.exists():
        fail(f"no log file at {path}", NOT_FOUND)
    try:
        start = parse_since(since) if since else None
    except ValueError as exc:
        fail(str(exc), BAD_INPUT)
    count = lines or (10 if errors and not flags else 20)
    # Kept open for --follow, which goes on from where this read ends: no line is lost in
    # between, even when the file is rotated meanwhile.
    fh = path.open(errors="replace")
    try:
        current = [
            line for _, line in entries(fh, start) if matches(line, flags=flags, errors=errors)
        ]
        # Too few lines since the last rotation: the rest come from the rotated copies.
        wanted = count - len(current)
        skip = os.fstat(fh.fileno()).st_ino
        older = (
            older_lines(path, start, flags=flags, errors=errors, wanted=wanted, skip=skip)
            if wanted > 0
            else []
        )
        tail = (older + current)[-count:]
        if as_json:
            emit_json({"file": str(path), "lines": tail})
            return
        for line in tail:
            console.print(line, markup=False)
        if follow_:
            with contextlib.suppress(KeyboardInterrupt):
                follow(path, fh, flags=flags, errors=errors)
    finally:
        fh.close()
