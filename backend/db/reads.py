"""Read transactions that see one consistent snapshot of the database across statements."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.orm import Session


@contextmanager
def one_snapshot(session: Session) -> Iterator[Session]:
    """Run the session's reads in one transaction that sees a single snapshot, then end it.

    PostgreSQL's default READ COMMITTED takes a new snapshot per statement: the transaction is
    made REPEATABLE READ. pysqlite (in its default, legacy transaction handling) sends no BEGIN
    before a SELECT, so every statement would be its own transaction: BEGIN is sent here, and
    the first SELECT after it fixes the snapshot (SQLite WAL) until the transaction ends.
    The session must not have begun a transaction yet; it is rolled back at the end."""
    if session.in_transaction():
        raise RuntimeError("one_snapshot needs a session that has not begun a transaction")
    try:
        bind = session.get_bind()
        if bind.dialect.name == "postgresql":
            session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
        elif bind.dialect.name == "sqlite":
            conn = session.connection()
            if not conn.connection.dbapi_connection.in_transaction:  # type: ignore[union-attr]
                conn.exec_driver_sql("BEGIN")
        yield session
    finally:
        session.rollback()
