"""The natural-key rules of a sync (backend/db/merge_rows.py): sealed AWS credentials, browser
sessions and login throttling written on PostgreSQL come back into the SQLite primary usable."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from backend.aws.credentials import key_ring_source, load_credentials, store_credentials
from backend.aws.models import AwsCredential, Provider, ToolRun
from backend.aws.providers import delete_provider
from backend.aws.secrets import AwsSecret
from backend.db.merge import sync_databases
from backend.security.models import LoginThrottle, User, WebSession
from backend.security.sessions import hash_session_id
from backend.security.throttle import Throttle
from tests.db.sync_sides import Sides, browsers, sides, write_user_token_run

__all__ = ["sides"]

THROTTLE = Throttle(max_failures=5, max_failures_per_address=20, max_delay=60)
ADDRESS_KEY = "addr:192.0.2.7"


def store_secret(s: Sides, sessions: sessionmaker[Session], owner: str, key_id: str) -> None:
    with sessions.begin() as db:
        store_credentials(
            db=db,
            keys=key_ring_source(s.settings),
            owner=owner,
            provider=db.scalars(select(Provider)).one(),
            secret=AwsSecret(access_key_id=key_id, secret_access_key="s3cr3t-" + key_id),
            secure=True,
            session=None,
        )


def secret_here(s: Sides, owner: str) -> AwsSecret:
    with s.local() as db:
        return load_credentials(
            db=db,
            keys=key_ring_source(s.settings),
            owner=owner,
            provider=db.scalars(select(Provider)).one(),
            session=None,
        )


def fail_sign_in(sessions: sessionmaker[Session], times: int) -> None:
    for _ in range(times):
        with sessions.begin() as db:
            THROTTLE.failed(db, keys=[ADDRESS_KEY])


def test_sync__mutable_rows__added_or_newer_taken_and_usable(sides: Sides) -> None:
    # Given a user new on each side (so that their ids differ), credentials stored here and
    # then again, later, on PostgreSQL, credentials of the new PostgreSQL user, its browser
    # session, and sign-in failures here then more of them there
    write_user_token_run(sides.local, "sqlite-user", "sqlite-token")
    write_user_token_run(sides.origin, "pg-user", "pg-token")
    store_secret(sides, sides.local, "admin", "AKIALOCAL0000001")
    fail_sign_in(sides.local, 1)
    store_secret(sides, sides.origin, "admin", "AKIAORIGIN000001")
    store_secret(sides, sides.origin, "pg-user", "AKIAPGUSER000001")
    with sides.origin() as db:
        pg_user = db.scalars(select(User.id).where(User.username == "pg-user")).one()
    browser = browsers(sides.origin).create(user_id=pg_user, client_address="192.0.2.7")
    fail_sign_in(sides.origin, 2)

    # When the origin is synced into the primary
    report = sync_databases(
        sides.local,
        sides.origin_engine,
        local_name="sqlite",
        origin_name="postgresql",
        actor="cli:test",
    )

    # Then the credentials open here: the newer ones of admin, and pg-user's
    assert secret_here(sides, "admin").access_key_id == "AKIAORIGIN000001"
    assert secret_here(sides, "pg-user").access_key_id == "AKIAPGUSER000001"
    assert report.tables["aws_credentials"].updated == 1
    assert report.tables["aws_credentials"].merged == 1
    # And the browser session belongs to pg-user as numbered here
    with sides.local() as db:
        session = db.get(WebSession, hash_session_id(browser))
        assert session is not None
        user = db.get(User, session.user_id)
        assert user is not None and user.username == "pg-user"
        # And the later sign-in failures are the ones counted
        throttle = db.get(LoginThrottle, ADDRESS_KEY)
        assert throttle is not None and throttle.failures == 2


def test_sync__deleted_here_since_last_sync__not_brought_back(sides: Sides) -> None:
    # Given, here, the base provider deleted and the base browser session signed out
    with sides.local.begin() as db:
        delete_provider(db=db, provider_id=db.scalars(select(Provider.id)).one())
    assert browsers(sides.local).delete(sides.base_browser)
    # ... while on PostgreSQL, later, a tool run and credentials used that provider, and a
    # new browser session was opened
    write_user_token_run(sides.origin, "pg-user", "pg-token")
    store_secret(sides, sides.origin, "admin", "AKIAORIGIN000001")
    new_browser = browsers(sides.origin).create(user_id=1)

    # When the origin is synced into the primary, knowing when the sides were last equal
    report = sync_databases(
        sides.local,
        sides.origin_engine,
        local_name="sqlite",
        origin_name="postgresql",
        actor="cli:test",
        since=sides.synced_at,
    )

    # Then what was deleted here stays deleted, with what belonged to it
    with sides.local() as db:
        assert db.scalars(select(Provider)).all() == []
        assert db.get(WebSession, hash_session_id(sides.base_browser)) is None
        assert db.scalars(select(AwsCredential)).all() == []
        # And what is new there is here: the session, the run (its provider gone, by name)
        assert db.get(WebSession, hash_session_id(new_browser)) is not None
        run = db.scalars(select(ToolRun).where(ToolRun.actor == "pg-user")).one()
        assert run.provider_id is None and run.provider_name == "prod"
    deleted = {name: t.deleted_here for name, t in report.tables.items() if t.deleted_here}
    assert deleted == {"providers": 1, "web_sessions": 1, "aws_credentials": 1}
