"""Logging set-up: plain lines in logs/pcm_ops_tools.log that the runbook's greps find."""

from __future__ import annotations

import logging
import traceback
from pathlib import Path
from types import TracebackType

from backend.core.filemodes import create_private_file, private_dir
from backend.core.logfiles import Rotation, open_handler

FORMAT = "%(asctime)s %(levelname)s [pid %(process)d] %(name)s: %(message)s"
_MARK = "_pcm_ops_handler"
# Loggers written under another name: uvicorn's general logger is called `uvicorn.error`, so
# each of its start-up lines would match the runbook's `grep -i "error\|exception\|failed"`.
SHOWN_AS = {"uvicorn.error": "uvicorn"}


class LineFormatter(logging.Formatter):
    """Writes every line of a multi-line message with the full prefix (time, level, pid,
    logger), so that each line greps alone: one record can then carry a line per flag of a
    thousand-flag rollback at the cost of one write."""

    def __init__(self, fmt: str = FORMAT) -> None:
        if not fmt.endswith("%(message)s"):
            raise ValueError("the format must end with %(message)s")
        super().__init__(fmt)

    def formatMessage(self, record: logging.LogRecord) -> str:
        shown = SHOWN_AS.get(record.name)
        if shown is not None:  # a copy: other handlers see the record as it was
            record = logging.makeLogRecord({**record.__dict__, "name": shown})
        message = record.message
        if "\n" not in message:
            return super().formatMessage(record)
        record.message = ""
        try:
            prefix = super().formatMessage(record)
        finally:
            record.message = message
        return prefix + ("\n" + prefix).join(message.split("\n"))

    def formatException(
        self,
        ei: tuple[type[BaseException], BaseException, TracebackType | None]
        | tuple[None, None, None],
    ) -> str:
        """The traceback, with validation errors told by location and message only: their text
        would carry the input, which may be a request body, a password, a key."""
        exc = ei[1]
        if exc is None:
            return super().formatException(ei)
        return "".join(_format_chain(exc)).rstrip("\n")


class SafeTracebacks(logging.Filter):
    """Gives a record the traceback text of `LineFormatter`, which any formatter then uses."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[1] is not None and not record.exc_text:
            record.exc_text = "".join(_format_chain(record.exc_info[1])).rstrip("\n")
        return True


_CAUSE = "\nThe above exception was the direct cause of the following exception:\n\n"
_CONTEXT = "\nDuring handling of the above exception, another exception occurred:\n\n"


def _exception_line(exc: BaseException) -> str:
    """`Type: message`; for an exception with `errors()` (pydantic's, FastAPI's validation
    errors) only each error's location and message, never its input."""
    errors = getattr(exc, "errors", None)
    if not callable(errors):
        return "".join(traceback.format_exception_only(type(exc), exc))
    try:
        found = [e for e in errors() if isinstance(e, dict)]
    except Exception:  # an errors() that fails: say nothing of the content
        found = []
    parts = [f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', '')}" for e in found]
    name = type(exc).__qualname__
    if type(exc).__module__ != "builtins":
        name = f"{type(exc).__module__}.{name}"
    return f"{name}: {len(parts)} error(s), inputs not logged: {'; '.join(parts)}\n"


def _format_chain(exc: BaseException) -> list[str]:
    """traceback.format_exception's text, each exception's line from `_exception_line`."""
    chain: list[tuple[BaseException, str]] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    joint = ""
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        chain.append((current, joint))
        if current.__cause__ is not None:
            current, joint = current.__cause__, _CAUSE
        elif current.__context__ is not None and not current.__suppress_context__:
            current, joint = current.__context__, _CONTEXT
        else:
            current = None
    lines: list[str] = []
    for link, link_joint in reversed(chain):
        if link.__traceback__ is not None:
            lines.append("Traceback (most recent call last):\n")
            lines.extend(traceback.format_tb(link.__traceback__))
        lines.append(_exception_line(link))
        lines.append(link_joint)
    return lines


def configure_logging(
    log_file: Path, level: str = "INFO", rotation: Rotation | None = None
) -> None:
    """Send our loggers and uvicorn's to `log_file` (owner-only, rotated as `rotation` says);
    idempotent within a process."""
    private_dir(log_file.parent)
    create_private_file(log_file)
    rotation = rotation or Rotation()
    target = f"{log_file.resolve()} {rotation}"
    shared: logging.Handler | None = None  # one lock and one open file for the three loggers
    for name in ("pcm_ops_tools", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        for handler in list(logger.handlers):
            if getattr(handler, _MARK, None) is not None:
                if getattr(handler, _MARK) == target:
                    break
                logger.removeHandler(handler)
                handler.close()
        else:
            if shared is None:
                # Every process writes and rotates the one file under a lock (see logfiles).
                shared = open_handler(log_file.resolve(), rotation)
                shared.setFormatter(LineFormatter())
                setattr(shared, _MARK, target)
            logger.addHandler(shared)
        if name == "pcm_ops_tools":
            logger.setLevel(level.upper())
    # uvicorn's own console handlers (server.console.log) get the same tracebacks.
    for name in ("uvicorn", "uvicorn.error"):
        for handler in logging.getLogger(name).handlers:
            if not any(isinstance(f, SafeTracebacks) for f in handler.filters):
                handler.addFilter(SafeTracebacks())
