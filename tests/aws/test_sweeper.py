"""The credential sweeper's behaviour while the database is unreachable."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from backend.aws.sweeper import CredentialSweeper
from backend.core.config import Settings
from backend.db.init_db import init_db
from backend.db.session import make_engine, session_factory
from backend.security.credentials_crypto import KeyRingSource


def test_sweeper__database_unreachable_for_many_ticks__one_error_line_then_one_recovery_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Given a sweeper whose database lives on a volume that is not there (SQLite cannot open it)
    volume = tmp_path / "volume"
    engine = make_engine(f"sqlite:///{volume / 'pcm.db'}")
    sweeper = CredentialSweeper(
        session_factory(engine),
        KeyRingSource(path=tmp_path / "keys.json"),
        flag=lambda _name: True,
        version=iter(range(1000)).__next__,  # a new flag version on every tick
    )
    caplog.set_level(logging.INFO, logger="pcm_ops_tools.aws")
    # When it ticks 20 times during the outage
    for _ in range(20):
        sweeper.tick()
    # Then the log says so once, without a traceback, not once per tick
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1, [r.getMessage() for r in errors]
    assert "retrying" in errors[0].getMessage() and errors[0].exc_info is None
    # When the database comes back
    volume.mkdir()
    settings = Settings(data_dir=tmp_path / "data", log_dir=tmp_path / "logs")
    init_db(settings, engine)
    sweeper.tick()
    sweeper.tick()
    # Then one line says it works again, and nothing more is logged as an error
    assert [r.getMessage() for r in caplog.records].count(
        "sweeping AWS credentials out of sessions works again"
    ) == 1
    assert len([r for r in caplog.records if r.levelno >= logging.ERROR]) == 1
    engine.dispose()
