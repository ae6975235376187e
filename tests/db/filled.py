"""A database filled through the app's own services (users, tokens, providers, sealed
credentials, flag changes with their audit events, a rollback record, an AWS tool run), and
its full contents for comparison: what the copy tests move between SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from backend.aws.credentials import key_ring_source, seal_credentials
from backend.aws.models import ToolRun
from backend.aws.providers import create_provider
from backend.aws.schemas import ProviderCreate
from backend.aws.secrets import AwsSecret
from backend.core.config import Settings
from backend.db.session import make_engine, session_factory
from backend.db.tables import app_tables
from backend.flags import service
from backend.security.audit_keys import anchor_sessions
from backend.security.tokens import Role, create_token
from backend.security.users import create_user

SECRET = AwsSecret("AKIAEXAMPLE0001", "wJalrXUtnFEMI/K7MDENG", "session-token-1")


def anchored(settings: Settings, url: str) -> tuple[Any, sessionmaker[Session]]:
    """An engine on `url` and sessions that chain audit events with the data dir's keys."""
    engine = make_engine(url)
    sessions = session_factory(engine)
    anchor_sessions(sessions, settings)
    return engine, sessions


def toggle(settings: Settings, url: str, flag: str, enabled: bool) -> None:
    engine, sessions = anchored(settings, url)
    try:
        with sessions.begin() as db:
            service.set_flag(db, name=flag, enabled=enabled, actor="ops", method="cli")
    finally:
        engine.dispose()


def fill(settings: Settings, url: str, *, toggles: int = 4) -> None:
    """Everything a team writes in a few days of use, on an initialised database."""
    engine, sessions = anchored(settings, url)
    try:
        with sessions.begin() as db:
            create_user(db, username="alice", password="correct horse battery", role=Role.ADMIN)
            create_token(db, name="ci", role=Role.ADMIN)
            provider = create_provider(
                db=db,
                data=ProviderCreate(
                    name="prod",
                    account_id="123456789012",
                    default_region="eu-west-1",
                    regions=["us-east-1"],
                ),
            )
            seal_credentials(
                db=db,
                ring=key_ring_source(settings).load(),
                owner="alice",
                provider_id=provider.id,
                secret=SECRET,
            )
            # A finished run as the tools write it (running one needs AWS).
            db.add(
                ToolRun(
                    actor="alice",
                    tool="ec2_instances",
                    provider_id=provider.id,
                    provider_name="prod",
                    regions=["eu-west-1"],
                    params={"state": "running", "limit": 5},
                    duration_ms=12.25,
                    outcome="ok",
                    row_count=1,
                    errors=[],
                    columns=["id", "cpu"],
                    rows=[{"id": "i-0abc", "cpu": 0.5, "tags": {"team": "ops"}}],
                )
            )
        for n in range(toggles):
            with sessions.begin() as db:
                service.set_flag(
                    db, name="csrf_tokens_enabled", enabled=n % 2 == 0, actor="ops", method="api"
                )
        with sessions.begin() as db:
            service.set_flag(
                db, name="xss_protection_enabled", enabled=True, actor="ops", method="ui"
            )
        with sessions.begin() as db:
            service.rollback_flags(db, names=None, actor="ops", method="emergency", reason="5xx")
    finally:
        engine.dispose()


def contents(url: str) -> dict[str, list[dict[str, Any]]]:
    """Every row of every table, in primary-key order, as Python values."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return {
                t.name: [
                    dict(r._mapping)
                    for r in conn.execute(select(t).order_by(*t.primary_key.columns))
                ]
                for t in app_tables()
            }
    finally:
        engine.dispose()
