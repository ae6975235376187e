"""Logging set-up: plain lines in logs/pcm_ops_tools.log that the runbook's greps find."""

from __future__ import annotations

import logging
from pathlib import Path

from backend.core.filemodes import create_private_file, private_dir

FORMAT = "%(asctime)s %(levelname)s [pid %(process)d] %(name)s: %(message)s"
_MARK = "_pcm_ops_handler"


class LineFormatter(logging.Formatter):
    """Writes every line of a multi-line message with the full prefix (time, level, pid,
    logger), so that each line greps alone: one record can then carry a line per flag of a
    thousand-flag rollback at the cost of one write."""

    def __init__(self, fmt: str = FORMAT) -> None:
        if not fmt.endswith("%(message)s"):
            raise ValueError("the format must end with %(message)s")
        super().__init__(fmt)

    def formatMessage(self, record: logging.LogRecord) -> str:
        message = record.message
        if "\n" not in message:
            return super().formatMessage(record)
        record.message = ""
        try:
            prefix = super().formatMessage(record)
        finally:
            record.message = message
        return prefix + ("\n" + prefix).join(message.split("\n"))


def configure_logging(log_file: Path, level: str = "INFO") -> None:
    """Send our loggers and uvicorn's to `log_file` (owner-only); idempotent within a process."""
    private_dir(log_file.parent)
    create_private_file(log_file)
    target = str(log_file.resolve())
    for name in ("pcm_ops_tools", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        for handler in list(logger.handlers):
            if getattr(handler, _MARK, None) is not None:
                if getattr(handler, _MARK) == target:
                    break
                logger.removeHandler(handler)
                handler.close()
        else:
            # O_APPEND: lines from several workers do not overwrite each other.
            handler = logging.FileHandler(target, mode="a", encoding="utf-8")
            handler.setFormatter(LineFormatter())
            setattr(handler, _MARK, target)
            logger.addHandler(handler)
        if name == "pcm_ops_tools":
            logger.setLevel(level.upper())
