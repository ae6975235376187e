"""The application's tables as one list, in foreign-key order, and their row counts: what a
copy, a sync or a status report between the SQLite file and PostgreSQL walks over."""

from __future__ import annotations

from sqlalchemy import Engine, Table, func, select
from sqlalchemy.engine import Connection

from backend.db.models import Base


def app_tables() -> list[Table]:
    """Every table of the schema, parents before children (insert in this order, delete in
    the reverse). Alembic's own version table is not among them."""
    return list(Base.metadata.sorted_tables)


def row_counts(bind: Engine | Connection) -> dict[str, int]:
    """Rows per application table, counted on one connection."""
    if isinstance(bind, Engine):
        with bind.connect() as conn:
            return row_counts(conn)
    return {
        table.name: int(bind.execute(select(func.count()).select_from(table)).scalar_one())
        for table in app_tables()
    }
