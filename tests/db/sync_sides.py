"""Two databases that were in step and then went apart, for the sync tests: the SQLite file
of the test's data directory (local, the primary after a rollback of `postgresql_support`) and
a scratch PostgreSQL database (origin), written through the app's own use cases."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

import pytest
from sqlalchemy import Engine, insert, select, text
from sqlalchemy.orm import Session, sessionmaker

from backend.aws.models import Provider, ToolRun
from backend.aws.providers import create_provider
from backend.aws.schemas import ProviderCreate
from backend.core.config import Settings
from backend.db.base import utcnow
from backend.db.init_db import InitReport, upgrade_schema
from backend.db.merge_rows import has_serial_id
from backend.db.session import engine_for, make_engine, session_factory
from backend.db.tables import app_tables
from backend.flags.acknowledgements import acknowledge
from backend.flags.audit_anchor import AuditAnchor, bind
from backend.flags.service import rollback_flags, set_flag
from backend.security.audit_keys import anchor_sessions, load_audit_keys
from backend.security.models import ApiToken
from backend.security.sessions import SessionStore
from backend.security.tokens import Role, create_token, hash_token, revoke_token
from backend.security.users import create_user
from tests.postgres import scratch_database

PASSWORD = "correct horse battery staple"


@dataclass
class Sides:
    settings: Settings  # the SQLite side's, with PCM_POSTGRES_URL naming the origin
    local: sessionmaker[Session]  # anchored: keyed events, checkpoints in the data dir
    local_engine: Engine
    origin: sessionmaker[Session]  # keyed like the local side; its checkpoints are not here
    origin_engine: Engine
    pg_database: str
    synced_at: datetime  # when the base was copied: every row on both sides
    base_browser: str  # a browser session of admin, in the base


@dataclass(frozen=True)
class Diverged:
    """What each side wrote after the common base."""

    origin_token_hash: str = ""
    local_token_hash: str = ""
    revoked_on_origin: str = ""  # a base token revoked on the origin only
    # Flags (all on by default) switched off on the origin later than anything here ...
    flags_from_origin: tuple[str, ...] = (
        "csrf_tokens_enabled",
        "pydantic_v2_schemas",
        "xss_protection_enabled",
    )
    # ... and one switched off there first, then off and on again here.
    flag_set_later_here: str = "atomic_session_updates"


@pytest.fixture
def sides(settings: Settings, initialized: InitReport) -> Iterator[Sides]:
    """Both sides with the same rows: the SQLite file init_db made, with a provider, a token,
    a toggle, a rollback with its acknowledgement and a browser session added, copied row for
    row (ids kept) into a migrated PostgreSQL."""
    with scratch_database("pcm_sync") as (name, url):
        settings = settings.model_copy(update={"postgres_url": url})
        local_engine, origin_engine = engine_for(settings), make_engine(url)
        local = session_factory(local_engine)
        anchor_sessions(local, settings)
        origin = session_factory(origin_engine)
        bind(origin, AuditAnchor(load_audit_keys(settings), None))
        with local.begin() as s:
            create_provider(
                db=s,
                data=ProviderCreate(
                    name="prod", account_id="123456789012", default_region="eu-west-1"
                ),
            )
            create_token(s, name="base-token", role=Role.OPERATOR)
        toggle(local, "enhanced_error_handling", False, "base")
        rollback_acknowledged(local, "secure_credential_storage", "base")
        browser = browsers(local).create(user_id=1, client_address="192.0.2.1")
        upgrade_schema(origin_engine)
        copy_rows(local_engine, origin_engine)
        synced_at = utcnow()
        try:
            yield Sides(
                settings, local, local_engine, origin, origin_engine, name, synced_at, browser
            )
        finally:
            local_engine.dispose()
            origin_engine.dispose()


def browsers(sessions: sessionmaker[Session]) -> SessionStore:
    return SessionStore(sessions, idle_timeout=3600, absolute_timeout=86400)


def copy_rows(source: Engine, target: Engine) -> None:
    """Every row of `source` into the migrated, empty `target`, ids kept (the common base)."""
    with source.connect() as src, target.begin() as dst:
        for table in app_tables():
            dst.execute(table.delete())
        for table in app_tables():
            rows = [dict(r) for r in src.execute(select(table)).mappings()]
            if rows:
                dst.execute(insert(table), rows)
        for table in app_tables():
            if has_serial_id(table):
                dst.execute(
                    text(
                        f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), "
                        f"coalesce(max(id), 0) + 1, false) FROM {table.name}"
                    )
                )


def diverge(sides: Sides) -> Diverged:
    """Writes on each side after the base, in this order in time: the origin first switches
    off a flag the local side then switches off and on; then the local side's writes; then
    the origin's (toggles, a rollback with its acknowledgement, a user, a token, a tool run,
    a revocation): ids collide on purpose. Four audit events on each side, a rollback record
    and its acknowledgement on each."""
    d = Diverged()
    toggle(sides.origin, d.flag_set_later_here, False, "alice")
    toggle(sides.local, d.flag_set_later_here, False, "bob")
    toggle(sides.local, d.flag_set_later_here, True, "bob")
    toggle(sides.local, "new_secret_key_handling", False, "bob")
    rollback_acknowledged(sides.local, "thread_safe_sessions", "bob")
    local_token = write_user_token_run(sides.local, "sqlite-user", "sqlite-token")
    toggle(sides.origin, "pydantic_v2_schemas", False, "alice")
    rollback_acknowledged(sides.origin, "xss_protection_enabled", "alice")
    toggle(sides.origin, "csrf_tokens_enabled", False, "alice")
    origin_token = write_user_token_run(sides.origin, "pg-user", "pg-token")
    with sides.origin.begin() as s:
        base_token = s.scalars(select(ApiToken.id).where(ApiToken.name == "base-token")).one()
        revoked = revoke_token(s, token_id=base_token).token_hash
    return Diverged(
        origin_token_hash=hash_token(origin_token),
        local_token_hash=hash_token(local_token),
        revoked_on_origin=revoked,
    )


def toggle(sessions: sessionmaker[Session], name: str, enabled: bool, actor: str) -> None:
    with sessions.begin() as s:
        set_flag(s, name=name, enabled=enabled, actor=actor, method="api")


def rollback_acknowledged(sessions: sessionmaker[Session], name: str, actor: str) -> int:
    with sessions.begin() as s:
        outcome = rollback_flags(s, names=[name], actor=actor, method="api", reason="test")
    assert outcome.record_id is not None
    acknowledge(sessions, record_id=outcome.record_id, actor=actor, method="api")
    return outcome.record_id


def write_user_token_run(sessions: sessionmaker[Session], user: str, token: str) -> str:
    """A new user, a new token (its plaintext returned) and a tool run on the base provider."""
    with sessions.begin() as s:
        create_user(s, username=user, password=PASSWORD, role="operator")
        _, plaintext = create_token(s, name=token, role=Role.VIEWER)
        provider = s.scalars(select(Provider)).one()
        s.add(
            ToolRun(
                actor=user,
                tool="ec2_instances",
                provider_id=provider.id,
                provider_name=provider.name,
                outcome="ok",
            )
        )
    return plaintext
