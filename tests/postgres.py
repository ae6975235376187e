"""The real PostgreSQL server for tests: scratch databases, and the seeded database that the
shared fixtures use when the suite runs with `--backend=postgresql`.

A server that cannot be reached skips the test loudly, except in CI, which sets
PCM_REQUIRE_POSTGRES=1 so that a missing server fails instead."""

from __future__ import annotations

import os
import uuid
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import psycopg
import pytest
from sqlalchemy import Connection, NullPool, delete, insert, select, text
from sqlalchemy.exc import OperationalError

from backend.db.init_db import schema_revisions
from backend.db.session import make_engine
from backend.db.tables import app_tables

PG_ADMIN = os.environ.get("PCM_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
# How long a reset waits for a lock held by a connection a test left open before it gives up
# and makes the database anew instead.
RESET_LOCK_TIMEOUT = "2s"


def admin_execute(sql: str, *params: object) -> None:
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(sql, params)  # type: ignore[arg-type]


def refuse_connections(name: str) -> None:
    """PostgreSQL down for one database, as clients see an outage: no new connections, and
    every open one cut (the shared server itself is never stopped)."""
    admin_execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
    admin_execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
        " WHERE datname = %s AND pid <> pg_backend_pid()",
        name,
    )


def accept_connections(name: str) -> None:
    admin_execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')


@dataclass
class Scratch:
    """A scratch database that a test takes down and brings back."""

    name: str
    url: str

    def down(self) -> None:
        refuse_connections(self.name)

    def up(self) -> None:
        accept_connections(self.name)


def url_of(name: str) -> str:
    """The SQLAlchemy URL of database `name` on the test server."""
    base = PG_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
    return f"{base}/{name}"


def require_server() -> None:
    """Skip the test loudly when the server does not answer, or fail it in CI."""
    try:
        psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=3).close()
    except psycopg.OperationalError as exc:
        message = f"PostgreSQL NOT REACHABLE at {PG_ADMIN}: PostgreSQL tests SKIPPED ({exc})"
        if os.environ.get("PCM_REQUIRE_POSTGRES") == "1":
            pytest.fail(message)
        warnings.warn(message, stacklevel=1)
        pytest.skip(message)


def create_database(name: str, template: str | None = None) -> None:
    admin_execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))


def drop_database(name: str) -> None:
    """Drop `name` if it exists, even while a test refuses connections to it or holds some."""
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        if admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
            admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


@contextmanager
def scratch_database(prefix: str) -> Iterator[tuple[str, str]]:
    """A new, empty database: yields its name and its SQLAlchemy URL; dropped afterwards."""
    require_server()
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    create_database(name)
    try:
        yield name, url_of(name)
    finally:
        drop_database(name)


class SchemaMoved(Exception):
    """A test left the seeded database at another schema revision than the template's."""


@dataclass
class SessionDatabases:
    """The databases of one test session on PostgreSQL: a template that init_db migrated and
    seeded once, a working copy reset to that seed before each test that wants it, and an
    empty one for the tests that set a database up themselves.

    A reset deletes every row, puts the seed rows back and rewinds the id sequences: measured
    at ~30-70 ms, against ~300 ms for TRUNCATE (new files, fsync) and ~220-670 ms for CREATE
    DATABASE ... TEMPLATE plus DROP per test. When it cannot be done (a test left a lock, moved
    the schema's revision or refused connections) the database is made anew."""

    prefix: str
    seed: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    revisions: tuple[str, ...] = ()

    @property
    def template(self) -> str:
        return f"{self.prefix}_template"

    @property
    def seeded(self) -> str:
        return f"{self.prefix}_seeded"

    @property
    def empty(self) -> str:
        return f"{self.prefix}_empty"

    def capture_template(self) -> None:
        """Remember the template's rows and revision; copy it to the working database."""
        engine = make_engine(url_of(self.template), poolclass=NullPool)
        try:
            self.revisions = schema_revisions(engine)
            with engine.connect() as conn:
                self.seed = {
                    t.name: [dict(row._mapping) for row in conn.execute(select(t))]
                    for t in app_tables()
                }
        finally:
            engine.dispose()
        create_database(self.seeded, template=self.template)

    def reset_seeded(self) -> str:
        """The working database as the template left it; returns its URL."""
        try:
            self._delete_and_seed()
        except (OperationalError, SchemaMoved):  # refused connections, a lock held too long
            drop_database(self.seeded)
            create_database(self.seeded, template=self.template)
        return url_of(self.seeded)

    def reset_empty(self) -> str:
        """A database with nothing in it; returns its URL."""
        try:
            self._drop_schema()
        except OperationalError:  # refused connections, a lock held too long
            drop_database(self.empty)
            create_database(self.empty)
        return url_of(self.empty)

    def drop_all(self) -> None:
        for name in (self.seeded, self.empty, self.template):
            drop_database(name)

    def _delete_and_seed(self) -> None:
        engine = make_engine(url_of(self.seeded), poolclass=NullPool)
        try:
            if schema_revisions(engine) != self.revisions:
                raise SchemaMoved(f"schema moved off {self.revisions}")
            with engine.begin() as conn:
                self._terminate_others(conn)
                conn.execute(text(f"SET LOCAL lock_timeout = '{RESET_LOCK_TIMEOUT}'"))
                for table in reversed(app_tables()):
                    conn.execute(delete(table))
                self._insert_seed(conn)
        finally:
            engine.dispose()

    def _drop_schema(self) -> None:
        # Faster than a new database: CREATE DATABASE copies template1 and checkpoints.
        engine = make_engine(url_of(self.empty), poolclass=NullPool)
        try:
            with engine.begin() as conn:
                self._terminate_others(conn)
                conn.execute(text(f"SET LOCAL lock_timeout = '{RESET_LOCK_TIMEOUT}'"))
                conn.execute(text("DROP SCHEMA public CASCADE"))
                conn.execute(text("CREATE SCHEMA public"))
        finally:
            engine.dispose()

    @staticmethod
    def _terminate_others(conn: Connection) -> None:
        # What a previous test left behind (a poller, a listener) must not write into the
        # next test's rows.
        conn.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        )

    def _insert_seed(self, conn: Connection) -> None:
        for table in app_tables():
            rows = self.seed.get(table.name)
            if rows:
                conn.execute(insert(table), rows)
            column = table.autoincrement_column
            if column is not None:
                # Where a fresh copy of the template would take its next id from.
                conn.execute(
                    text(
                        f"SELECT setval(pg_get_serial_sequence(:table, :column),"
                        f' coalesce(max("{column.name}"), 1), max("{column.name}") IS NOT NULL)'
                        f' FROM "{table.name}"'
                    ),
                    {"table": table.name, "column": column.name},
                )
