"""Alembic environment: runs on the connection init_db hands over, or on the settings' URL."""

from __future__ import annotations

from alembic import context

from backend.db.models import Base

config = context.config
target_metadata = Base.metadata


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is None:
        from backend.core.config import get_settings
        from backend.db.session import engine_for

        engine = engine_for(get_settings())
        with engine.connect() as conn:
            _run(conn)
        engine.dispose()
    else:
        _run(connection)


def _run(connection: object) -> None:
    context.configure(
        connection=connection,  # type: ignore[arg-type]
        target_metadata=target_metadata,
        render_as_batch=True,  # SQLite needs batch mode to alter tables
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    raise SystemExit("offline migrations are not supported; run backend/db/init_db.py")
run_migrations_online()
