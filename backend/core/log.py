"""Logging set-up: plain lines in logs/pcm_ops_tools.log that the runbook's greps find."""

from __future__ import annotations

import logging
from pathlib import Path

FORMAT = "%(asctime)s %(levelname)s [pid %(process)d] %(name)s: %(message)s"
_MARK = "_pcm_ops_handler"


def configure_logging(log_file: Path, level: str = "INFO") -> None:
    """Send our loggers and uvicorn's to `log_file`; idempotent within a process."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
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
            handler.setFormatter(logging.Formatter(FORMAT))
            setattr(handler, _MARK, target)
            logger.addHandler(handler)
        if name == "pcm_ops_tools":
            logger.setLevel(level.upper())
