"""Use cases on an open transaction: seed, toggle, roll back, register. The caller commits."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from backend.db.init_db import upgrade_schema
from backend.db.session import make_engine, session_factory
from backend.flags import (
    DEFAULT_FLAGS,
    FlagDefinition,
    FlagNotFound,
    FlagStoreUnavailable,
    RollbackModeActive,
    service,
)
from backend.flags.models import AuditEvent, FlagRow, FlagStoreRow, RollbackRecord
from backend.flags.registry import Risk

CSRF = "csrf_tokens_enabled"


def version(sessions: sessionmaker[Session]) -> int:
    with sessions() as s:
        store = s.get(FlagStoreRow, 1)
        assert store is not None
        return store.version


def stored(sessions: sessionmaker[Session]) -> dict[str, bool]:
    with sessions() as s:
        return {r.name: r.enabled for r in s.scalars(select(FlagRow))}


def events(sessions: sessionmaker[Session]) -> list[AuditEvent]:
    with sessions() as s:
        return list(s.scalars(select(AuditEvent).order_by(AuditEvent.id)))


def test_seed_creates_every_registered_flag_with_its_default(
    sessions: sessionmaker[Session],
) -> None:
    assert stored(sessions) == {d.name: d.default for d in DEFAULT_FLAGS}
    with sessions() as s:
        rows = {r.name: r for r in s.scalars(select(FlagRow))}
    for d in DEFAULT_FLAGS:
        assert rows[d.name].rollback_value is d.rollback_value
        assert rows[d.name].requires_restart is d.requires_restart
        assert rows[d.name].risk == str(d.risk)


def test_seed_again_adds_nothing_and_keeps_operator_state(
    sessions: sessionmaker[Session],
) -> None:
    with sessions.begin() as s:
        service.set_flag(s, name=CSRF, enabled=False, actor="ops", method="api")
    before = version(sessions)
    with sessions.begin() as s:
        assert service.seed_flags(s) == []
    assert stored(sessions)[CSRF] is False
    assert version(sessions) == before


def test_seed_updates_metadata_from_code_but_not_the_value(
    sessions: sessionmaker[Session],
) -> None:
    changed = FlagDefinition(CSRF, "new words", phase=9, risk=Risk.LOW, default=False)
    with sessions.begin() as s:
        service.seed_flags(s, [changed])
    with sessions() as s:
        row = s.get(FlagRow, CSRF)
        assert row is not None
        assert (row.description, row.phase, row.risk) == ("new words", 9, "low")
        assert row.enabled is True  # the stored state stays the operators'


def test_set_flag_stores_value_bumps_version_and_audits(sessions: sessionmaker[Session]) -> None:
    before = version(sessions)
    with sessions.begin() as s:
        change, new_version, written = service.set_flag(
            s, name=CSRF, enabled=False, actor="alice", method="cli", reason="INC-1"
        )
    assert (change.old, change.new, change.changed) == (True, False, True)
    assert new_version == before + 1 == version(sessions)
    assert stored(sessions)[CSRF] is False
    [event] = events(sessions)
    assert (event.flag_name, event.actor, event.method, event.reason) == (
        CSRF,
        "alice",
        "cli",
        "INC-1",
    )
    assert (event.old_value, event.new_value, event.version) == (True, False, new_version)
    with sessions() as s:
        row = s.get(FlagRow, CSRF)
        assert row is not None
        assert row.updated_by == "alice"
    assert (written.name, written.enabled, written.updated_by) == (CSRF, False, "alice")


def test_set_flag__to_the_value_it_has__records_nothing(sessions: sessionmaker[Session]) -> None:
    # Given a flag that is on, at some version
    before = version(sessions)
    # When it is set on again
    with sessions.begin() as s:
        change, at, _ = service.set_flag(s, name=CSRF, enabled=True, actor="a", method="api")
    # Then nothing changed: no audit event, no new version
    assert (change.old, change.new, change.changed) == (True, True, False)
    assert at == before == version(sessions)
    assert events(sessions) == []


def test_rollback_of_a_flag__at_its_rollback_value__records_nothing(
    sessions: sessionmaker[Session],
) -> None:
    # Given a flag at its rollback value
    with sessions.begin() as s:
        service.set_flag(s, name=CSRF, enabled=False, actor="a", method="api")
    before, evs = version(sessions), len(events(sessions))
    # When it is rolled back
    with sessions.begin() as s:
        outcome = service.rollback_flags(s, names=[CSRF], actor="ops", method="feature_flag")
    # Then no record, no event, no version
    assert (outcome.record_id, outcome.version, outcome.verification) == (None, before, "success")
    assert [c.changed for c in outcome.changes] == [False]
    assert (version(sessions), len(events(sessions))) == (before, evs)
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(RollbackRecord)) == 0


def test_emergency_rollback__every_flag_at_its_rollback_value__leaves_only_a_record(
    sessions: sessionmaker[Session],
) -> None:
    # Given every flag rolled back already
    with sessions.begin() as s:
        first = service.rollback_flags(s, names=None, actor="ops", method="emergency")
    before, evs = version(sessions), len(events(sessions))
    # When the emergency rollback runs again
    with sessions.begin() as s:
        again = service.rollback_flags(s, names=None, actor="ops", method="emergency")
    # Then it leaves a record saying nothing needed changing, and nothing else
    assert again.record_id is not None and again.record_id != first.record_id
    assert (again.version, version(sessions), len(events(sessions))) == (before, before, evs)
    with sessions() as s:
        record = s.get(RollbackRecord, again.record_id)
        assert record is not None
        assert (record.changes, record.verification, record.version) == ([], "success", before)


@pytest.mark.parametrize("name", ["nope", "", "x" * 5000])
def test_set_flag_on_unknown_name_raises_and_leaves_the_store_alone(
    sessions: sessionmaker[Session], name: str
) -> None:
    before = version(sessions)
    with pytest.raises(FlagNotFound), sessions.begin() as s:
        service.set_flag(s, name=name, enabled=False, actor="a", method="api")
    assert version(sessions) == before
    assert events(sessions) == []


def test_rollback_mode_refuses_enabling_but_allows_disabling(
    sessions: sessionmaker[Session],
) -> None:
    with sessions.begin() as s:
        service.set_flag(s, name=CSRF, enabled=False, actor="a", method="api")
    with pytest.raises(RollbackModeActive, match="rollback mode is on"), sessions.begin() as s:
        service.set_flag(s, name=CSRF, enabled=True, actor="a", method="api", rollback_mode=True)
    assert stored(sessions)[CSRF] is False
    with sessions.begin() as s:
        service.set_flag(
            s,
            name="xss_protection_enabled",
            enabled=False,
            actor="a",
            method="api",
            rollback_mode=True,
        )
    assert stored(sessions)["xss_protection_enabled"] is False


def test_rollback_mode_still_reports_an_unknown_flag_as_unknown(
    sessions: sessionmaker[Session],
) -> None:
    with pytest.raises(FlagNotFound), sessions.begin() as s:
        service.set_flag(s, name="nope", enabled=True, actor="a", method="api", rollback_mode=True)


def test_rollback_all_in_one_version_with_record_and_audit(
    sessions: sessionmaker[Session],
) -> None:
    before = version(sessions)
    with sessions.begin() as s:
        outcome = service.rollback_flags(
            s, names=None, actor="ops", method="emergency", reason="INC-2"
        )
    assert outcome.version == before + 1 == version(sessions)
    assert outcome.verification == "success"
    assert stored(sessions) == {d.name: d.rollback_value for d in DEFAULT_FLAGS}
    changed = {c.name for c in outcome.changes if c.changed}
    assert changed == {d.name for d in DEFAULT_FLAGS if d.default != d.rollback_value}
    evs = events(sessions)
    assert {e.flag_name for e in evs} == changed
    assert {e.version for e in evs} == {outcome.version}
    assert {e.rollback_record_id for e in evs} == {outcome.record_id}
    with sessions() as s:
        record = s.get(RollbackRecord, outcome.record_id)
        assert record is not None
        assert (record.feature, record.method, record.trigger) == ("ALL", "emergency", "INC-2")
        assert record.verification == "success"
        assert {c["flag"] for c in record.changes} == changed


def test_rollback_of_named_flags_touches_only_them(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as s:
        outcome = service.rollback_flags(
            s, names=[CSRF, "postgresql_support"], actor="ops", method="feature_flag"
        )
    values = stored(sessions)
    assert values[CSRF] is False
    assert values["xss_protection_enabled"] is True
    assert [c.name for c in outcome.changes if c.changed] == [CSRF]
    assert [e.flag_name for e in events(sessions)] == [CSRF]


def test_rollback_with_an_unknown_name_changes_nothing(sessions: sessionmaker[Session]) -> None:
    before = version(sessions)
    with pytest.raises(FlagNotFound, match="nope"), sessions.begin() as s:
        service.rollback_flags(s, names=[CSRF, "nope"], actor="ops", method="feature_flag")
    assert version(sessions) == before
    assert stored(sessions)[CSRF] is True
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(RollbackRecord)) == 0


def test_create_flag_registers_a_new_flag(sessions: sessionmaker[Session]) -> None:
    extra = FlagDefinition("bench_flag", "for tests", phase=0, risk=Risk.LOW, default=False)
    with sessions.begin() as s:
        service.create_flag(s, extra, actor="tests")
    with sessions.begin() as s:
        change, _, _ = service.set_flag(s, name="bench_flag", enabled=True, actor="a", method="api")
    assert change.new is True
    assert stored(sessions)["bench_flag"] is True


def test_writes_on_an_uninitialised_store_say_so(empty_database_url: str) -> None:
    engine = make_engine(empty_database_url)
    try:
        upgrade_schema(engine)  # tables, but no store row: init_db never seeded
        sessions = session_factory(engine)
        with pytest.raises(FlagStoreUnavailable, match="init_db"), sessions.begin() as s:
            service.set_flag(s, name=CSRF, enabled=False, actor="a", method="api")
    finally:
        engine.dispose()
