"""The log file's lines: what the runbook's greps find."""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import pytest

from backend.core.log import LineFormatter, configure_logging
from backend.flags import FlagRuntime

PREFIX = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} WARNING \[pid \d+\] pcm_ops_tools\.")


def test_every_line_of_a_multi_line_record_carries_the_prefix(tmp_path: Path) -> None:
    log_file = tmp_path / "app.log"
    configure_logging(log_file)
    logging.getLogger("pcm_ops_tools.test").warning("first\nsecond\nthird")
    lines = log_file.read_text().splitlines()
    assert [line.rsplit(": ", 1)[1] for line in lines] == ["first", "second", "third"]
    assert all(PREFIX.match(line) for line in lines)


def test_the_format_must_end_with_the_message() -> None:
    with pytest.raises(ValueError, match="message"):
        LineFormatter("%(message)s %(asctime)s")


def test_a_rollback_logs_one_greppable_line_per_changed_flag(
    runtime: FlagRuntime, settings_log: Path
) -> None:
    result = runtime.rollback(None, actor="ops", method="emergency", reason="bad\ndeploy")
    lines = [line for line in settings_log.read_text().splitlines() if "Feature flag" in line]
    changed = [line for line in lines if " changed: " in line]
    assert len(changed) == len(result.changed) > 0
    for item, line in zip(result.changed, changed, strict=True):
        assert PREFIX.match(line)
        assert f"Feature flag {item['flag']} changed: enabled -> disabled by ops" in line
        # A reason cannot start a line of its own (forge a log line).
        assert line.endswith("reason: bad\\ndeploy")
    assert any("emergency rollback completed" in line for line in lines)


@pytest.fixture
def settings_log(settings) -> Path:  # type: ignore[no-untyped-def]
    configure_logging(settings.log_file)
    return settings.log_file


def test_uvicorns_general_logger__is_written_as_uvicorn__so_the_runbooks_error_grep_skips_it(
    tmp_path: Path,
) -> None:
    # Given the log set up as the server does
    log_file = tmp_path / "app.log"
    configure_logging(log_file)
    # When uvicorn logs its start-up line (at INFO, as uvicorn's own set-up lets it)
    uvicorn = logging.getLogger("uvicorn.error")
    level = uvicorn.level
    uvicorn.setLevel(logging.INFO)
    try:
        uvicorn.info("Application startup complete.")
    finally:
        uvicorn.setLevel(level)
    # Then the line names it `uvicorn`, and the runbook's grep does not list it
    (line,) = log_file.read_text().splitlines()
    assert line.endswith(f" INFO [pid {os.getpid()}] uvicorn: Application startup complete.")
    assert not re.search(r"error|exception|failed", line, re.IGNORECASE)
    # ... while the record itself keeps its name for every other handler
    record = logging.LogRecord("uvicorn.error", logging.INFO, __file__, 1, "x", None, None)
    LineFormatter().format(record)
    assert record.name == "uvicorn.error"
