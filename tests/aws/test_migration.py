"""Revision 0003 upgrades and downgrades an empty and a filled database, alone on its branch."""

from __future__ import annotations

from typing import Any

from alembic import command
from sqlalchemy import Engine, inspect, text

from backend.db.init_db import alembic_config, upgrade_schema


def _downgrade_0003(engine: Engine) -> None:
    cfg = alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0003@-1")


def test_0003_down_and_up_with_data(engine: Engine, with_credentials: dict[str, Any]) -> None:
    _downgrade_0003(engine)
    tables = set(inspect(engine).get_table_names())
    assert not {"aws_credentials", "aws_tool_runs"} & tables
    assert "regions" not in {c["name"] for c in inspect(engine).get_columns("providers")}
    with engine.connect() as conn:
        assert conn.execute(text("SELECT name FROM providers")).scalars().all() == ["prod"]
    upgrade_schema(engine)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT regions FROM providers")).scalar() == '["us-east-1"]'


def test_0003_on_an_empty_database(engine: Engine) -> None:
    _downgrade_0003(engine)
    upgrade_schema(engine)
    assert {"aws_credentials", "aws_tool_runs"} <= set(inspect(engine).get_table_names())
