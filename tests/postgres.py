"""Scratch databases on the real PostgreSQL server for tests.

A server that cannot be reached skips the test loudly, except in CI, which sets
PCM_REQUIRE_POSTGRES=1 so that a missing server fails instead."""

from __future__ import annotations

import os
import uuid
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest

PG_ADMIN = os.environ.get("PCM_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")


def admin_execute(sql: str, *params: object) -> None:
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(sql, params)  # type: ignore[arg-type]


@contextmanager
def scratch_database(prefix: str) -> Iterator[tuple[str, str]]:
    """A new, empty database: yields its name and its SQLAlchemy URL; dropped afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    try:
        admin = psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        message = f"PostgreSQL NOT REACHABLE at {PG_ADMIN}: PostgreSQL tests SKIPPED ({exc})"
        if os.environ.get("PCM_REQUIRE_POSTGRES") == "1":
            pytest.fail(message)
        warnings.warn(message, stacklevel=1)
        pytest.skip(message)
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
    try:
        yield name, f"{base}/{name}"
    finally:
        admin_execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
