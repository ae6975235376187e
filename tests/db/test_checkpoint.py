"""Background WAL checkpoints: committed pages reach the database file off the request path."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

from sqlalchemy import text

from backend.db.checkpoint import WalCheckpointer
from backend.db.session import make_engine


def rows_in_main_file(db: Path, tmp: Path) -> int:
    """Rows the database file holds by itself, without its write-ahead log."""
    alone = tmp / "alone.db"
    shutil.copyfile(db, alone)
    with sqlite3.connect(alone) as conn:
        return int(conn.execute("SELECT count(*) FROM t").fetchone()[0])


def test_a_checkpoint_moves_committed_rows_into_the_database_file(tmp_path: Path) -> None:
    db = tmp_path / "x.db"
    engine = make_engine(f"sqlite:///{db}")
    try:
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE t (x TEXT)"))
        checkpointer = WalCheckpointer.for_engine(engine)
        assert checkpointer is not None
        assert checkpointer.run_once() is True
        sizes = []
        for cycle in range(1, 11):
            with engine.begin() as conn:
                conn.execute(text("INSERT INTO t VALUES (:x)"), [{"x": "y" * 200}] * 300)
            assert rows_in_main_file(db, tmp_path) == 300 * (cycle - 1)  # still in the log
            assert checkpointer.run_once() is True
            assert rows_in_main_file(db, tmp_path) == 300 * cycle
            assert checkpointer.run_once() is False  # nothing new: no work
            sizes.append(Path(f"{db}-wal").stat().st_size)
        # Each commit starts the log again from its beginning: ten commits leave it the size
        # of about one (appending, it would be ten times that).
        assert max(sizes) < 1.5 * sizes[0]
    finally:
        engine.dispose()


def test_only_sqlite_files_get_a_checkpointer(tmp_path: Path) -> None:
    memory = make_engine("sqlite://")
    postgres = make_engine("postgresql+psycopg://u@127.0.0.1:1/none")
    try:
        assert WalCheckpointer.for_engine(memory) is None
        assert WalCheckpointer.for_engine(postgres) is None
    finally:
        memory.dispose()
        postgres.dispose()
