"""`pcm-ops logs [--flags] [--errors] [--follow]`: the runbook's log greps, with times.

tail -f logs/pcm_ops_tools.log                                   -> pcm-ops logs --follow
grep "Feature flag" logs/pcm_ops_tools.log | tail -20            -> pcm-ops logs --flags
grep -i "error\\|exception\\|failed" logs/pcm_ops_tools.log | tail -10 -> pcm-ops logs --errors
"""

from __future__ import annotations

import contextlib
import re
import time
from collections import deque
from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated

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


def error_lines(path: Path, since: datetime) -> list[str]:
    """The runbook's error grep, limited to entries written at or after `since`."""
    if not path.exists():
        return []
    with path.open(errors="replace") as fh:
        return [line for _, line in entries(fh, since) if is_error(line)]


def follow(path: Path, *, flags: bool, errors: bool, offset: int) -> None:
    """Print lines as they are appended (tail -f) from `offset`; survives truncation."""
    pending = ""
    with path.open(errors="replace") as fh:
        fh.seek(offset)
        while True:
            pending += fh.readline()
            if pending.endswith("\n"):
                line, pending = pending, ""
                if matches(line, flags=flags, errors=errors):
                    console.print(line.rstrip("\n"), markup=False)
                continue
            # At the end, maybe with half a line: wait for the writer to finish it.
            if path.exists() and path.stat().st_size < fh.tell():
                fh.seek(0)  # the log was truncated or rotated in place
                pending = ""
            time.sleep(0.2)


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
    tail: deque[str] = deque(maxlen=count)
    with path.open(errors="replace") as fh:
        for _, line in entries(fh, start):
            if matches(line, flags=flags, errors=errors):
                tail.append(line)
        end = fh.tell()  # --follow goes on from here: no line is lost in between
    if as_json:
        emit_json({"file": str(path), "lines": list(tail)})
        return
    for line in tail:
        console.print(line, markup=False)
    if follow_:
        with contextlib.suppress(KeyboardInterrupt):
            follow(path, flags=flags, errors=errors, offset=end)
