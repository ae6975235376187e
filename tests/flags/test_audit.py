"""The hash-chained audit trail: built through the use cases, tampered with raw SQL (the one
place where poking the tables is the point), and caught by verify_chain."""

from __future__ import annotations

import itertools

import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session, sessionmaker

from backend.flags import FlagRuntime
from backend.flags.audit import GENESIS, event_as_dict, verify_chain
from backend.flags.models import AuditEvent

CSRF = "csrf_tokens_enabled"


@pytest.fixture
def chained(runtime: FlagRuntime, sessions: sessionmaker[Session]) -> sessionmaker[Session]:
    """Five audit events: four toggles and a one-flag rollback."""
    for enabled in (False, True, False, True):
        runtime.toggle(CSRF, enabled, actor="alice", method="api", reason="test")
    runtime.rollback(["xss_protection_enabled"], actor="bob", method="cli", reason="INC-3")
    return sessions


def report(sessions: sessionmaker[Session]) -> tuple[bool, int, list[str]]:
    with sessions() as s:
        r = verify_chain(s)
    return r.ok, r.events, r.problems


def tamper(sessions: sessionmaker[Session], sql: str, **params: object) -> None:
    with sessions.begin() as s:
        s.execute(text(sql), params)


def test_an_empty_trail_verifies(sessions: sessionmaker[Session]) -> None:
    assert report(sessions) == (True, 0, [])


def test_an_untouched_chain_verifies(chained: sessionmaker[Session]) -> None:
    assert report(chained) == (True, 5, [])


def test_each_event_links_to_the_previous_one(chained: sessionmaker[Session]) -> None:
    with chained() as s:
        evs = list(s.scalars(select(AuditEvent).order_by(AuditEvent.id)))
    assert [e.id for e in evs] == [1, 2, 3, 4, 5]
    assert evs[0].prev_hash == GENESIS
    for prev, event in itertools.pairwise(evs):
        assert event.prev_hash == prev.hash
    assert len({e.hash for e in evs}) == 5


@pytest.mark.parametrize(
    "assignment",
    [
        "new_value = NOT new_value",
        "actor = 'mallory'",
        "reason = 'nothing happened'",
        "method = 'ui'",
        "version = version + 100",
    ],
)
def test_an_edited_event_is_detected(chained: sessionmaker[Session], assignment: str) -> None:
    tamper(chained, f"UPDATE flag_audit_events SET {assignment} WHERE id = 2")
    ok, _, problems = report(chained)
    assert not ok
    assert "event 2: content does not match its hash (edited)" in problems


def test_an_edit_with_a_recomputed_hash_breaks_the_next_link(
    chained: sessionmaker[Session],
) -> None:
    # A forger who also rewrites the event's own hash still breaks event 3's link to it.
    tamper(
        chained,
        "UPDATE flag_audit_events SET actor = 'mallory', hash = :h WHERE id = 2",
        h="f" * 64,
    )
    ok, _, problems = report(chained)
    assert not ok
    assert "event 3: link to the previous event is broken" in problems


def test_a_deleted_middle_event_is_detected(chained: sessionmaker[Session]) -> None:
    tamper(chained, "DELETE FROM flag_audit_events WHERE id = 3")
    ok, events, problems = report(chained)
    assert not ok
    assert events == 4
    assert "events 3..3 are missing" in problems
    assert "event 4: link to the previous event is broken" in problems


def test_a_deleted_last_event_is_detected(chained: sessionmaker[Session]) -> None:
    tamper(chained, "DELETE FROM flag_audit_events WHERE id = 5")
    ok, _, problems = report(chained)
    assert not ok
    assert "the newest events were deleted: chain head does not match" in problems


def test_a_wiped_trail_is_detected(chained: sessionmaker[Session]) -> None:
    tamper(chained, "DELETE FROM flag_audit_events")
    ok, events, problems = report(chained)
    assert not ok
    assert events == 0
    assert "store counts 5 events, table holds 0" in problems


def test_the_chain_keeps_verifying_after_more_changes(
    chained: sessionmaker[Session], runtime: FlagRuntime
) -> None:
    runtime.rollback(None, actor="ops", method="emergency", reason="INC-4")
    ok, events, _ = report(chained)
    assert ok
    assert events > 5


def test_event_as_dict_shows_who_what_when_and_why(chained: sessionmaker[Session]) -> None:
    with chained() as s:
        first = s.get(AuditEvent, 1)
        last = s.get(AuditEvent, 5)
        assert first is not None and last is not None
        d, r = event_as_dict(first), event_as_dict(last)
    assert d["flag_name"] == CSRF
    assert (d["actor"], d["method"], d["reason"]) == ("alice", "api", "test")
    assert (d["old_value"], d["new_value"]) == (True, False)
    assert str(d["at"]).endswith("+00:00")
    assert d["rollback_record_id"] is None
    assert (r["flag_name"], r["method"], r["reason"]) == ("xss_protection_enabled", "cli", "INC-3")
    assert isinstance(r["rollback_record_id"], int)


def test_the_hashed_body_is_canonical_json() -> None:
    """The hand-written encoding equals json.dumps(sort_keys=True) for awkward values too."""
    import json
    from datetime import UTC, datetime

    from backend.flags.audit import canonical

    for reason, record, old in (
        ("", None, None),
        ('quotes " and \\ backslash', 7, True),
        ("unicode é ✓ \u2028 and \n newline", 123456789, False),
    ):
        event = {
            "id": 42,
            "at": datetime(2026, 11, 26, 12, 0, 1, 5, tzinfo=UTC),
            "flag_name": "xss_protection_enabled",
            "actor": "user:zoë",
            "method": "emergency",
            "old_value": old,
            "new_value": False,
            "reason": reason,
            "version": 9,
            "rollback_record_id": record,
        }
        body = {
            "id": 42,
            "at": event["at"].isoformat(),
            "flag": event["flag_name"],  # type: ignore[attr-defined]
            "actor": event["actor"],
            "method": event["method"],
            "old": old,
            "new": False,
            "reason": reason,
            "version": 9,
            "record": record,
        }
        assert canonical(event) == json.dumps(body, sort_keys=True, separators=(",", ":"))


@pytest.mark.parametrize(
    "reason",
    ["", 'quotes " and \\ backslash', "unicode é ✓ \u2028 and \n newline"],
)
def test_bulk_rollback_events_hash_exactly_as_the_verifier_recomputes(
    runtime: FlagRuntime, sessions: sessionmaker[Session], reason: str
) -> None:
    # The emergency rollback hashes its events from shared, pre-encoded parts; verify_chain
    # recomputes every hash from the stored rows with canonical().
    runtime.toggle(CSRF, True, actor="alice", method="api")
    result = runtime.rollback(None, actor="user:zoë", method="emergency", reason=reason)
    assert len(result.changed) > 1
    ok, _, problems = report(sessions)
    assert (ok, problems) == (True, [])
    with sessions() as s:
        stored = s.scalars(select(AuditEvent).order_by(AuditEvent.id.desc())).first()
        assert stored is not None
        assert (stored.actor, stored.reason) == ("user:zoë", reason)
        assert stored.rollback_record_id == result.record_id


def test_verify__every_event_edited__the_report_stays_short(
    runtime: FlagRuntime, sessions: sessionmaker[Session]
) -> None:
    for i in range(60):
        runtime.toggle(CSRF, i % 2 == 1, actor="alice", method="api")
    tamper(sessions, "UPDATE flag_audit_events SET actor = 'mallory'")
    with sessions() as s:
        r = verify_chain(s)
    assert (r.ok, r.first_bad_event, r.failed_anchors) == (False, 1, ["chain"])
    assert len(r.problems) == 51
    assert r.problems[-1] == "... and 10 more problems"
