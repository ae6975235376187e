"""The audit chain anchored outside the database: HMAC-keyed events and signed checkpoints.

The tampering here is what an attacker with write access to the database (but not to the key)
can do with SQL: delete the newest events and fix the store's count and head, or rewrite an
event and recompute every hash after it. Before the anchor, both passed verification."""

from __future__ import annotations

import gc
import hashlib
import json
import logging
import stat

import pytest
from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session, sessionmaker

from backend.core.config import Settings
from backend.db.session import session_factory
from backend.flags import FlagRuntime
from backend.flags.audit import GENESIS, ChainReport, canonical, verify_chain
from backend.flags.audit_anchor import AuditAnchor
from backend.flags.models import AuditEvent
from backend.flags.service import set_flag
from backend.security.audit_keys import anchor_sessions

CSRF = "csrf_tokens_enabled"
XSS = "xss_protection_enabled"


@pytest.fixture
def anchored(
    sessions: sessionmaker[Session], settings: Settings, runtime: FlagRuntime
) -> AuditAnchor:
    """The test's sessions (and so its runtime) chain with the audit key and checkpoint."""
    return anchor_sessions(sessions, settings)


def toggles(runtime: FlagRuntime, n: int, *, actor: str = "alice") -> None:
    for i in range(n):
        # Each one a change: setting the value a flag has records nothing.
        flipped = not runtime.get(CSRF).stored_enabled
        runtime.toggle(CSRF, flipped, actor=actor, method="api", reason=f"change {i}")


def verify(sessions: sessionmaker[Session]) -> ChainReport:
    with sessions() as s:
        return verify_chain(s)


def sql(sessions: sessionmaker[Session], statement: str, **params: object) -> None:
    with sessions.begin() as s:
        s.execute(text(statement), params)


def rechain_unkeyed(sessions: sessionmaker[Session], from_id: int) -> None:
    """What a forger without the key can do: recompute every hash from `from_id` on with plain
    SHA-256 (marking the events unkeyed), and set the store's head to the new last hash."""
    with sessions.begin() as s:
        events = list(s.scalars(select(AuditEvent).order_by(AuditEvent.id)))
        prev = GENESIS
        for e in events:
            if e.id >= from_id:
                body = {n: getattr(e, n) for n in ("id", "at", "flag_name", "actor", "method")}
                body |= {n: getattr(e, n) for n in ("old_value", "new_value", "reason")}
                body |= {"version": e.version, "rollback_record_id": e.rollback_record_id}
                e.prev_hash, e.key_id = prev, None
                e.hash = hashlib.sha256((prev + canonical(body)).encode()).hexdigest()
            prev = e.hash
        s.execute(text("UPDATE flag_store SET audit_head = :h WHERE id = 1"), {"h": prev})


def test_keyed_chain__untouched__verifies_with_hmac_and_checkpoints(
    anchored: AuditAnchor, runtime: FlagRuntime, sessions: sessionmaker[Session]
) -> None:
    # Given changes made one at a time and in bulk
    toggles(runtime, 3)
    runtime.rollback(None, actor="ops", method="emergency", reason="INC-7")
    # When
    report = verify(sessions)
    # Then every event is keyed with the active key, and the checkpoints were checked
    assert (report.ok, report.problems) == (True, [])
    with sessions() as s:
        key_ids = set(s.scalars(select(AuditEvent.key_id)))
    assert key_ids == {anchored.keys.active_id}
    assert any("HMAC-SHA256" in c and anchored.keys.active_id in c for c in report.checked)
    assert any("4 signed checkpoints" in c for c in report.checked)


def test_keyed_chain__newest_events_deleted_and_store_count_and_head_fixed__detected(
    anchored: AuditAnchor, runtime: FlagRuntime, sessions: sessionmaker[Session]
) -> None:
    # Given five keyed events
    toggles(runtime, 5)
    # When the two newest go, and the store's count and head are made to agree
    sql(sessions, "DELETE FROM flag_audit_events WHERE id > 3")
    sql(
        sessions,
        "UPDATE flag_store SET audit_count = 3,"
        " audit_head = (SELECT hash FROM flag_audit_events WHERE id = 3) WHERE id = 1",
    )
    report = verify(sessions)
    # Then the chain and store agree, but the signed checkpoints do not
    assert not report.ok
    assert report.failed_anchors == ["checkpoints"]
    assert report.first_bad_event == 4
    assert any("saw 5 events, the table holds 3" in p for p in report.problems)


def test_keyed_chain__event_rewritten_and_following_hashes_recomputed__detected(
    anchored: AuditAnchor, runtime: FlagRuntime, sessions: sessionmaker[Session]
) -> None:
    toggles(runtime, 5)
    # When event 2 is rewritten and every hash after it recomputed (without the key)
    sql(sessions, "UPDATE flag_audit_events SET actor = 'mallory' WHERE id = 2")
    rechain_unkeyed(sessions, from_id=2)
    report = verify(sessions)
    # Then: unkeyed events after a keyed one, and checkpoints that no longer match
    assert not report.ok
    assert report.first_bad_event == 2
    assert any(p.startswith("event 2: unkeyed after keyed event 1") for p in report.problems)
    assert "checkpoints" in report.failed_anchors
    assert any("the chain was rewritten after event 1, up to event 2" in p for p in report.problems)


def test_keyed_chain__whole_chain_recomputed_unkeyed__detected_by_the_checkpoints(
    anchored: AuditAnchor, runtime: FlagRuntime, sessions: sessionmaker[Session]
) -> None:
    toggles(runtime, 4)
    sql(sessions, "UPDATE flag_audit_events SET reason = 'nothing to see' WHERE id = 1")
    rechain_unkeyed(sessions, from_id=1)
    report = verify(sessions)
    assert not report.ok
    assert report.failed_anchors == ["checkpoints"]


def test_upgraded_database__old_unkeyed_events_then_keyed__verifies(
    runtime: FlagRuntime, sessions: sessionmaker[Session], settings: Settings
) -> None:
    # Given events written before the chain was keyed (plain SHA-256)
    toggles(runtime, 3)
    # When the process gets its audit key and writes more
    anchor_sessions(sessions, settings)
    toggles(runtime, 2)
    runtime.rollback([XSS], actor="ops", method="cli", reason="INC-8")
    report = verify(sessions)
    # Then nothing is reported, and the report says what each part was checked with
    assert (report.ok, report.events, report.problems) == (True, 6, [])
    assert "3 unkeyed SHA-256 hashes (written before the chain was keyed)" in report.checked


def test_upgraded_database__old_event_rewritten_and_everything_after_recomputed__detected(
    runtime: FlagRuntime, sessions: sessionmaker[Session], settings: Settings
) -> None:
    # Given old unkeyed events followed by keyed ones
    toggles(runtime, 3)
    anchor_sessions(sessions, settings)
    toggles(runtime, 2)
    # When an old event is rewritten and all following hashes recomputed with SHA-256
    sql(sessions, "UPDATE flag_audit_events SET actor = 'mallory' WHERE id = 2")
    rechain_unkeyed(sessions, from_id=2)
    report = verify(sessions)
    # Then the checkpoints of the keyed changes catch it
    assert not report.ok
    assert "checkpoints" in report.failed_anchors


def test_keyed_chain__edited_checkpoint_line__detected(
    anchored: AuditAnchor, runtime: FlagRuntime, sessions: sessionmaker[Session]
) -> None:
    toggles(runtime, 2)
    assert anchored.checkpoints is not None
    path = anchored.checkpoints.path
    lines = path.read_text().splitlines()
    forged = json.loads(lines[-1]) | {"events": 1}
    path.write_text("\n".join([*lines[:-1], json.dumps(forged)]) + "\n")
    report = verify(sessions)
    assert not report.ok
    assert "checkpoint audit_checkpoints.jsonl line 2: signature does not match (edited)" in (
        report.problems
    )


def test_keyed_chain__checkpoint_file_deleted__verifies_with_a_warning(
    anchored: AuditAnchor, runtime: FlagRuntime, sessions: sessionmaker[Session]
) -> None:
    toggles(runtime, 2)
    assert anchored.checkpoints is not None
    anchored.checkpoints.path.unlink()
    report = verify(sessions)
    assert report.ok
    assert any("no signed checkpoint found" in w for w in report.warnings)


def test_verify__without_the_audit_key__keyed_events_are_reported_unverifiable(
    anchored: AuditAnchor, runtime: FlagRuntime, engine: object, sessions: sessionmaker[Session]
) -> None:
    toggles(runtime, 2)
    unanchored = sessionmaker(bind=sessions.kw["bind"])
    report = verify(unanchored)
    assert not report.ok
    assert any("2 keyed events cannot be checked" in p for p in report.problems)


def test_checkpoints__each_commit__one_signed_0600_line_also_logged(
    anchored: AuditAnchor,
    runtime: FlagRuntime,
    sessions: sessionmaker[Session],
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.INFO, logger="pcm_ops_tools.audit"):
        toggles(runtime, 2)
    assert anchored.checkpoints is not None
    path = anchored.checkpoints.path
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    lines = path.read_text().splitlines()
    assert [json.loads(line)["events"] for line in lines] == [1, 2]
    logged = [r.getMessage() for r in caplog.records if "Audit checkpoint" in r.getMessage()]
    assert [m.removeprefix("Audit checkpoint ") for m in logged] == lines


def test_checkpoints__rolled_back_change__none_written(
    anchored: AuditAnchor, runtime: FlagRuntime, sessions: sessionmaker[Session]
) -> None:
    # A change refused inside its transaction (unknown flag in a bulk rollback) rolls back.
    with pytest.raises(Exception, match="nope"):
        runtime.rollback([CSRF, "nope"], actor="ops", method="cli")
    assert anchored.checkpoints is not None
    assert not anchored.checkpoints.path.exists()
    assert verify(sessions).ok


@pytest.mark.parametrize("size", [32, 64, 100])
def test_audit_keys__event_digest__is_standard_hmac_sha256(size: int) -> None:
    # The chain's fast HMAC must be the standard one, or no other tool could check the trail.
    import hmac
    import os

    from backend.flags.audit_keys import AuditKeys

    key = os.urandom(size)
    keys = AuditKeys(active_id="k1", keys={"k1": key})
    digest = keys.digest("k1")
    assert digest is not None
    for message in (b"", b"x" * 63, b"y" * 64, b"z" * 1000):
        assert digest(message) == hmac.new(key, message, hashlib.sha256).hexdigest()
    assert keys.digest("k2") is None


def test_bind__factories_made_one_after_another__every_one_checkpoints_its_commits(
    engine: Engine, settings: Settings
) -> None:
    # Given session factories made and dropped one after another, as test runs and CLI
    # commands do (SQLAlchemy's event registry, keyed by id(), once took a new factory for a
    # collected one and left it without the checkpoint listener)
    path = settings.audit_checkpoint_file
    for i in range(40):
        sessions = session_factory(engine)
        anchor_sessions(sessions, settings)
        before = len(path.read_text().splitlines()) if path.exists() else 0
        # When a change is committed through the new factory
        with sessions.begin() as s:
            set_flag(s, name=CSRF, enabled=i % 2 == 1, actor="alice", method="api")
        # Then its head is checkpointed
        assert len(path.read_text().splitlines()) == before + 1, f"factory {i}"
        del sessions
        gc.collect()
