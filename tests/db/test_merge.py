"""Syncing what was written on PostgreSQL into the SQLite file that became the primary
(backend/db/merge.py), on a real SQLite file and a real scratch PostgreSQL database."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from backend.aws.models import ToolRun
from backend.db.merge import OriginUnreachable, SyncRefused, SyncReport, sync_databases
from backend.db.tables import app_tables, row_counts
from backend.flags import FlagRuntime
from backend.flags.audit import verify_chain
from backend.flags.models import AuditEvent, FlagRow, FlagStoreRow, RollbackRecord
from backend.security.models import ApiToken, User
from tests.db.sync_sides import Sides, diverge, sides
from tests.postgres import refuse_connections

__all__ = ["sides"]


def sync(s: Sides, *, dry_run: bool = False) -> SyncReport:
    return sync_databases(
        s.local,
        s.origin_engine,
        local_name="sqlite",
        origin_name="postgresql",
        actor="cli:test",
        since=s.synced_at,
        dry_run=dry_run,
    )


def snapshot(sessions: sessionmaker[Session]) -> dict[str, Any]:
    """Every row of every table, to tell "nothing changed" from "the counts happen to match"."""
    with sessions() as s:
        return {
            t.name: sorted(map(repr, s.execute(select(t)).mappings().all())) for t in app_tables()
        }


def flag(sessions: sessionmaker[Session], name: str) -> FlagRow:
    with sessions() as s:
        row = s.get(FlagRow, name)
        assert row is not None
        return row


def test_sync__diverged_sides__origin_writes_here_once_and_chain_verifies(sides: Sides) -> None:
    # Given two sides that went apart after a common base
    d = diverge(sides)
    version_before = flag(sides.local, "csrf_tokens_enabled").version

    # When the origin's writes are synced into the local side
    report = sync(sides)

    # Then every user, token, record and run of both sides is here, once
    with sides.local() as s:
        users = s.scalars(select(User.username)).all()
        assert sorted(users) == ["admin", "pg-user", "sqlite-user"]
        hashes = s.scalars(select(ApiToken.token_hash)).all()
        assert hashes.count(d.origin_token_hash) == 1 and hashes.count(d.local_token_hash) == 1
        assert len(hashes) == 4  # admin, base, one new on each side
        revoked = s.scalars(select(ApiToken).where(ApiToken.token_hash == d.revoked_on_origin))
        assert revoked.one().revoked_at is not None  # a revocation made there holds here
        assert sorted(r.actor for r in s.scalars(select(ToolRun))) == ["pg-user", "sqlite-user"]
        records = {r.feature: r for r in s.scalars(select(RollbackRecord))}
        assert sorted(records) == [
            "secure_credential_storage",
            "thread_safe_sessions",
            "xss_protection_enabled",
        ]
        # ... each with its own acknowledgement, by whoever acknowledged it on its side
        assert records["xss_protection_enabled"].acknowledgement is not None
        assert records["xss_protection_enabled"].acknowledgement.actor == "alice"
        assert records["thread_safe_sessions"].acknowledgement is not None
        assert records["thread_safe_sessions"].acknowledgement.actor == "bob"
        # ... the origin's rollback event points at the record as merged here
        xss_rollback = s.scalars(
            select(AuditEvent).where(
                AuditEvent.flag_name == "xss_protection_enabled", AuditEvent.method == "api"
            )
        ).one()
        assert xss_rollback.rollback_record_id == records["xss_protection_enabled"].id
        assert xss_rollback.actor == "alice" and xss_rollback.method == "api"
        # And the chain holds the base, both sides' events and one for the synced flag
        chain = verify_chain(s)
        assert chain.ok, chain.problems
        methods = s.scalars(select(AuditEvent.method).order_by(AuditEvent.id)).all()
        assert methods.count("sync") == 3 and len(methods) == 2 + 4 + 4 + 3
    assert report.chain_verified and report.audit_events_appended == 4 + 3

    # And the flags switched off later on the origin are off here, at a new version
    for name in d.flags_from_origin:
        synced = flag(sides.local, name)
        assert synced.enabled is False and synced.updated_by == "alice"
        assert synced.version > version_before
    assert report.flags_updated == list(d.flags_from_origin)
    # ... while the flag changed here after the origin's change keeps the local value
    assert flag(sides.local, d.flag_set_later_here).enabled is True
    with sides.local() as s:
        store = s.get(FlagStoreRow, 1)
        assert store is not None and store.version == synced.version


def test_sync__run_twice__second_run_merges_nothing(sides: Sides) -> None:
    # Given a sync that brought the origin's writes over
    diverge(sides)
    first = sync(sides)
    assert first.changed > 0
    before = snapshot(sides.local)

    # When it runs again
    again = sync(sides)

    # Then nothing is merged, updated or appended, and no row changed
    assert again.changed == 0 and again.audit_events_appended == 0
    assert again.flags_updated == []
    assert all(t.already_here == t.origin_rows for t in again.tables.values())
    assert snapshot(sides.local) == before


def test_sync__dry_run__reports_the_merge_and_changes_nothing(sides: Sides) -> None:
    # Given two sides that went apart
    diverge(sides)
    before = snapshot(sides.local)

    # When a dry run goes through the merge
    dry = sync(sides, dry_run=True)

    # Then it says what a sync would do, and the local side is as it was
    assert dry.dry_run and dry.chain_verified
    assert dry.tables["users"].merged == 1 and len(dry.flags_updated) == 3
    assert snapshot(sides.local) == before
    # ... and the real sync then does what it said
    real = sync(sides)
    assert real.tables == dry.tables and real.flags_updated == dry.flags_updated


def test_sync__origin_unreachable__refused_and_nothing_changed(sides: Sides) -> None:
    # Given the origin's writes, then PostgreSQL refusing connections
    diverge(sides)
    before = snapshot(sides.local)
    sides.origin_engine.dispose()
    refuse_connections(sides.pg_database)

    # When a sync is tried
    with pytest.raises(OriginUnreachable, match="cannot read the postgresql database"):
        sync(sides)

    # Then the local side is untouched
    assert snapshot(sides.local) == before


def test_sync__every_table_has_a_rule(sides: Sides) -> None:
    # Given the schema's tables, When a sync with nothing to bring runs
    report = sync(sides)

    # Then it went through every table but the bookkeeping ones, and changed nothing
    expected = {t.name for t in app_tables()} - {"flag_store", "sync_merged_rows"}
    assert set(report.tables) == expected and report.changed == 0
    with sides.local() as s:
        assert s.scalar(select(func.count()).select_from(AuditEvent)) == 2
    assert row_counts(sides.origin_engine)["users"] == 1


def test_sync__runtime_serving_the_primary__sees_the_synced_flags(sides: Sides) -> None:
    # Given a flag runtime serving the local side (as a running server does)
    d = diverge(sides)
    runtime = FlagRuntime(sides.local)
    runtime.refresh(force=True)
    assert all(runtime.get(name).enabled for name in d.flags_from_origin)

    # When the sync takes the origin's later flag changes
    sync(sides)

    # Then the runtime's next incremental refresh serves them, by the store's new version
    runtime.refresh()
    assert not any(runtime.get(name).enabled for name in d.flags_from_origin)
    assert runtime.get(d.flag_set_later_here).enabled is True


def test_sync__back_the_other_way__only_what_is_new_there(sides: Sides) -> None:
    # Given the origin's writes synced into the primary
    diverge(sides)
    sync(sides)

    # When the primary's rows are synced back into PostgreSQL (the other direction)
    back = sync_databases(
        sides.origin,
        sides.local_engine,
        local_name="postgresql",
        origin_name="sqlite",
        actor="cli:test",
    )

    # Then PostgreSQL gains the SQLite side's own rows, and none of those it gave, twice
    with sides.origin() as s:
        assert sorted(s.scalars(select(User.username))) == ["admin", "pg-user", "sqlite-user"]
        assert len(s.scalars(select(ToolRun)).all()) == 2
        assert len(s.scalars(select(RollbackRecord)).all()) == 3
        chain = verify_chain(s)
        assert chain.ok, chain.problems
    assert back.tables["users"].merged == 1 and back.tables["aws_tool_runs"].merged == 1
    # ... and the flags changed later on SQLite are taken there
    later_here = ["atomic_session_updates", "new_secret_key_handling", "thread_safe_sessions"]
    assert back.flags_updated == later_here
    assert flag(sides.origin, "atomic_session_updates").enabled is True
    assert flag(sides.origin, "new_secret_key_handling").enabled is False


def test_sync__origin_chain_edited__refused_and_nothing_changed(sides: Sides) -> None:
    # Given the origin's writes, one of its audit events edited afterwards
    diverge(sides)
    before = snapshot(sides.local)
    with sides.origin.begin() as s:
        event = s.scalars(select(AuditEvent).order_by(AuditEvent.id.desc()).limit(1)).one()
        event.reason = "nothing to see here"

    # When a sync is tried
    with pytest.raises(SyncRefused, match="audit chain does not verify"):
        sync(sides)

    # Then no history of doubtful origin comes in: the local side is untouched
    assert snapshot(sides.local) == before
