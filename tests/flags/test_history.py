"""The history read model: keyset pages that hold still while changes are written, rollback
groups that are never cut in two, records that changed nothing, filters."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from backend.core.config import Settings
from backend.db.init_db import init_db
from backend.db.session import make_engine, session_factory
from backend.flags import DEFAULT_FLAGS, service
from backend.flags.history import HistoryFilter, HistoryPage, RecordGroup, history_page
from backend.flags.models import AuditEvent, FlagRow
from tests.postgres import scratch_database

FLAG = "thread_safe_sessions"


def flip(sessions: sessionmaker[Session], times: int, name: str = FLAG) -> list[int]:
    """Toggle `name` `times` times (each a real change); the ids of the events written."""
    ids = []
    for i in range(times):
        with sessions.begin() as s:
            row = s.scalar(select(FlagRow).where(FlagRow.name == name))
            assert row is not None
            service.set_flag(
                s, name=name, enabled=not row.enabled, actor="ops", method="api", reason=f"r{i}"
            )
        with sessions() as s:
            ids.append(s.scalars(select(AuditEvent.id).order_by(AuditEvent.id.desc())).first())
    return ids


def all_on(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as s:
        for d in DEFAULT_FLAGS:
            row = s.scalar(select(FlagRow).where(FlagRow.name == d.name))
            if row is not None and not row.enabled:
                service.set_flag(s, name=d.name, enabled=True, actor="ops", method="api")


def emergency(sessions: sessionmaker[Session], reason: str = "error spike") -> int:
    with sessions.begin() as s:
        return service.rollback_flags(
            s, names=None, actor="admin", method="emergency", reason=reason
        ).record_id


def page(
    sessions: sessionmaker[Session],
    flt: HistoryFilter | None = None,
    **kwargs: int | None,
) -> HistoryPage:
    with sessions() as s:
        return history_page(s, flt or HistoryFilter(), **kwargs)  # type: ignore[arg-type]


def event_ids(p: HistoryPage) -> list[int]:
    ids: list[int] = []
    for entry in p.entries:
        ids.extend(e.id for e in entry.events) if isinstance(entry, RecordGroup) else ids.append(
            entry.id
        )
    return ids


def walk_older(sessions: sessionmaker[Session], limit: int) -> list[HistoryPage]:
    pages = [page(sessions, limit=limit)]
    while pages[-1].older is not None:
        pages.append(page(sessions, before=pages[-1].older, limit=limit))
    return pages


def test_history_page__more_than_a_page__older_pages_hold_every_event_once(
    sessions: sessionmaker[Session],
) -> None:
    # Given 25 changes
    written = flip(sessions, 25)
    # When the pages are walked from the latest to the oldest, 10 at a time
    pages = walk_older(sessions, limit=10)
    # Then they hold every change once, newest first, and link back to newer pages
    seen = [i for p in pages for i in event_ids(p)]
    assert seen == sorted(written, reverse=True)
    assert [len(event_ids(p)) for p in pages] == [10, 10, 5]
    assert pages[0].newer is None and all(p.newer is not None for p in pages[1:])
    assert pages[-1].older is None


def test_history_page__changes_written_while_paging__next_page_neither_repeats_nor_skips(
    sessions: sessionmaker[Session],
) -> None:
    # Given 20 changes and the first page of 10 read
    written = flip(sessions, 20)
    first = page(sessions, limit=10)
    # When 7 more changes are written before the reader asks for older ones
    flip(sessions, 7)
    second = page(sessions, before=first.older, limit=10)
    # Then the second page starts right after the first page's last change
    assert event_ids(first) + event_ids(second) == sorted(written, reverse=True)
    # And going back to newer from there shows the first page again, new changes excluded
    assert event_ids(page(sessions, after=second.newer, limit=10)) == event_ids(first)


def test_history_page__newer_reaching_the_latest__a_full_latest_page(
    sessions: sessionmaker[Session],
) -> None:
    written = flip(sessions, 15)
    back = page(sessions, after=written[7], limit=10)  # only 7 newer than it
    assert event_ids(back) == sorted(written, reverse=True)[:10]
    assert back.newer is None


def test_history_page__emergency_rollback__its_events_grouped_under_the_record(
    sessions: sessionmaker[Session],
) -> None:
    # Given every flag on, then an emergency rollback, then a toggle
    all_on(sessions)
    record_id = emergency(sessions)
    flip(sessions, 1)
    # When the latest page is read
    latest = page(sessions)
    # Then the rollback is one entry holding one event per flag, after the newer toggle
    assert not isinstance(latest.entries[0], RecordGroup)
    group = latest.entries[1]
    assert isinstance(group, RecordGroup) and group.record.id == record_id
    assert group.record.trigger == "error spike" and group.record.actor == "admin"
    assert sorted(e.flag_name for e in group.events) == sorted(d.name for d in DEFAULT_FLAGS)
    assert {e.rollback_record_id for e in group.events} == {record_id}
    assert not any(isinstance(e, AuditEvent) and e.rollback_record_id for e in latest.entries)


def test_history_page__a_page_boundary_inside_a_rollback__the_group_stays_whole(
    sessions: sessionmaker[Session],
) -> None:
    # Given 5 toggles, an emergency rollback of 9 flags, then 3 toggles
    flip(sessions, 5, "csrf_tokens_enabled")
    all_on(sessions)
    record_id = emergency(sessions)
    flip(sessions, 3)
    # When pages of 5 are walked (the first one ends two events into the rollback)
    pages = walk_older(sessions, limit=5)
    # Then the whole rollback is on the first page, and no event is on two pages
    groups = [e for e in pages[0].entries if isinstance(e, RecordGroup)]
    assert [g.record.id for g in groups] == [record_id]
    assert len(groups[0].events) == len(DEFAULT_FLAGS)
    seen = [i for p in pages for i in event_ids(p)]
    assert len(seen) == len(set(seen))
    with sessions() as s:
        assert sorted(seen) == list(s.scalars(select(AuditEvent.id).order_by(AuditEvent.id)))


def test_history_page__rollback_that_changed_nothing__shown_as_its_record(
    sessions: sessionmaker[Session],
) -> None:
    # Given an emergency rollback, then a second one when everything is already off
    all_on(sessions)
    emergency(sessions)
    flip(sessions, 2)  # on and off again: everything is at its rollback value
    second = emergency(sessions, reason="again, to be sure")
    # When the latest page is read
    latest = page(sessions)
    # Then the second rollback is the newest entry, a record without events
    top = latest.entries[0]
    assert isinstance(top, RecordGroup) and top.record.id == second and top.events == []
    assert sum(isinstance(e, RecordGroup) and e.record.id == second for e in latest.entries) == 1


def test_history_page__flag_filter__groups_hold_only_that_flags_events(
    sessions: sessionmaker[Session],
) -> None:
    all_on(sessions)
    record_id = emergency(sessions)
    flip(sessions, 2, "csrf_tokens_enabled")
    only = page(sessions, HistoryFilter(flag=FLAG))
    groups = [e for e in only.entries if isinstance(e, RecordGroup)]
    assert [g.record.id for g in groups] == [record_id]
    assert [e.flag_name for e in groups[0].events] == [FLAG]
    assert all(
        (e.events[0] if isinstance(e, RecordGroup) else e).flag_name == FLAG for e in only.entries
    )


def test_history_page__time_filter__until_is_exclusive(sessions: sessionmaker[Session]) -> None:
    flip(sessions, 3)
    with sessions() as s:
        events = list(s.scalars(select(AuditEvent).order_by(AuditEvent.id)))
    cut = HistoryFilter(until=events[-1].at)
    assert events[-1].id not in event_ids(page(sessions, cut))
    wider = HistoryFilter(since=events[0].at, until=events[-1].at + timedelta(microseconds=1))
    assert sorted(event_ids(page(sessions, wider))) == [e.id for e in events]


def test_history_page__before_and_after__refused(sessions: sessionmaker[Session]) -> None:
    with pytest.raises(ValueError, match="not both"):
        page(sessions, before=5, after=1)


@pytest.fixture
def pg_sessions(make_settings: Callable[..., Settings]) -> Iterator[sessionmaker[Session]]:
    """A fresh database on the real PostgreSQL server, migrated and seeded."""
    with scratch_database("pcm_history") as (_name, url):
        init_db(make_settings(database_url=url))
        engine = make_engine(url)
        try:
            yield session_factory(engine)
        finally:
            engine.dispose()


def test_history_page__on_postgresql__same_pages_groups_and_empty_records(
    pg_sessions: sessionmaker[Session],
) -> None:
    # Given toggles, a rollback, toggles, and a rollback that changed nothing, on PostgreSQL
    flip(pg_sessions, 4, "csrf_tokens_enabled")
    all_on(pg_sessions)
    record_id = emergency(pg_sessions)
    flip(pg_sessions, 2)
    empty_id = emergency(pg_sessions, reason="nothing left")
    # When pages of 5 are walked
    pages = walk_older(pg_sessions, limit=5)
    # Then every event is on one page, the rollback whole, the empty record first
    seen = [i for p in pages for i in event_ids(p)]
    with pg_sessions() as s:
        assert sorted(seen) == list(s.scalars(select(AuditEvent.id).order_by(AuditEvent.id)))
    assert len(seen) == len(set(seen))
    top = pages[0].entries[0]
    assert isinstance(top, RecordGroup) and top.record.id == empty_id and not top.events
    groups = [e for p in pages for e in p.entries if isinstance(e, RecordGroup)]
    assert [g.record.id for g in groups] == [empty_id, record_id]
