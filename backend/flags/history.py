"""Reading the flag history: audit events filtered, paged by key and grouped under the rollback
record that made them, and the changes of a time range for the charts.

Pages are keyed on the event id (`before` / `after`), never on an offset: ids only grow, so a
page holds the same events however many changes are written while someone reads the pages,
and no event is shown twice or skipped. The events of one rollback are never split across
pages: a page that would cut a group is extended to hold all of it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import ColumnElement, Select, exists, func, select
from sqlalchemy.orm import Session

from backend.flags.models import AuditEvent, RollbackRecord

PAGE_SIZE = 100
# The chart draws at most this many of the latest changes of its range.
MAX_CHART_CHANGES = 2000


@dataclass(frozen=True, slots=True)
class HistoryFilter:
    """Which events to show; `until` is exclusive (the end of the minute or day typed)."""

    flag: str | None = None
    actor: str | None = None
    method: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def events(self) -> Select[AuditEvent]:
        q = select(AuditEvent)
        if self.flag:
            q = q.where(AuditEvent.flag_name == self.flag)
        if self.actor:
            q = q.where(AuditEvent.actor == self.actor)
        if self.method:
            q = q.where(AuditEvent.method == self.method)
        if self.since:
            q = q.where(AuditEvent.at >= self.since)
        if self.until:
            q = q.where(AuditEvent.at < self.until)
        return q

    def records(self) -> Select[RollbackRecord]:
        q = select(RollbackRecord)
        if self.flag:
            q = q.where(RollbackRecord.feature.in_([self.flag, "ALL"]))
        if self.actor:
            q = q.where(RollbackRecord.actor == self.actor)
        if self.method:
            q = q.where(RollbackRecord.method == self.method)
        if self.since:
            q = q.where(RollbackRecord.started_at >= self.since)
        if self.until:
            q = q.where(RollbackRecord.started_at < self.until)
        return q


@dataclass(frozen=True, slots=True)
class RecordGroup:
    """A rollback record with its (filtered) per-flag events; none when nothing changed."""

    record: RollbackRecord
    events: list[AuditEvent] = field(default_factory=list)

    @property
    def at(self) -> datetime:
        return self.record.started_at


@dataclass(frozen=True, slots=True)
class HistoryPage:
    """Newest first: lone events and rollback groups. `older` / `newer` are the cursors of the
    neighbouring pages (None: there is none)."""

    entries: list[AuditEvent | RecordGroup]
    older: int | None
    newer: int | None

    @property
    def event_count(self) -> int:
        return sum(len(e.events) if isinstance(e, RecordGroup) else 1 for e in self.entries)


def history_page(
    session: Session,
    flt: HistoryFilter,
    *,
    before: int | None = None,
    after: int | None = None,
    limit: int = PAGE_SIZE,
) -> HistoryPage:
    """One page of `limit` events (more when a rollback group would be cut): the latest, the
    ones just older than event `before`, or just newer than event `after`."""
    if before is not None and after is not None:
        raise ValueError("give before or after, not both")
    base = flt.events()
    rows: list[AuditEvent] = []
    if after is not None:
        rows = list(
            session.scalars(base.where(AuditEvent.id > after).order_by(AuditEvent.id).limit(limit))
        )[::-1]
        if len(rows) < limit:  # reached the newest: show a full latest page instead
            rows, after = [], None
    if after is None:
        q = base if before is None else base.where(AuditEvent.id < before)
        rows = list(session.scalars(q.order_by(AuditEvent.id.desc()).limit(limit)))
    rows = _complete_groups(session, base, rows)
    older = newer = None
    lower = upper = None
    if rows:
        low, high = rows[-1], rows[0]
        if session.scalar(select(exists(base.where(AuditEvent.id < low.id).subquery()))):
            older, lower = low.id, low.at
        first_newer = session.scalar(
            base.where(AuditEvent.id > high.id).order_by(AuditEvent.id).limit(1)
        )
        if first_newer is not None:
            newer, upper = high.id, first_newer.at
    return HistoryPage(_entries(session, flt, rows, lower, upper, limit), older, newer)


def _complete_groups(
    session: Session, base: Select[AuditEvent], rows: list[AuditEvent]
) -> list[AuditEvent]:
    """`rows` with the missing events of the rollbacks at either end (ids descending)."""
    if not rows:
        return rows
    edges = {rows[0].rollback_record_id, rows[-1].rollback_record_id} - {None}
    if not edges:
        return rows
    # One rollback's events have consecutive ids (written in one transaction under the store
    # lock), so the missing ones lie within as many ids of the page as the record changed.
    reach = max(
        len(r.changes)
        for r in session.scalars(select(RollbackRecord).where(RollbackRecord.id.in_(edges)))
    )
    have = {e.id for e in rows}
    extra = session.scalars(
        base.where(
            AuditEvent.id.between(rows[-1].id - reach, rows[0].id + reach),
            AuditEvent.rollback_record_id.in_(edges),
            AuditEvent.id.not_in(have),
        )
    )
    return sorted([*rows, *extra], key=lambda e: e.id, reverse=True)


def _entries(
    session: Session,
    flt: HistoryFilter,
    rows: Sequence[AuditEvent],
    lower: datetime | None,
    upper: datetime | None,
    limit: int,
) -> list[AuditEvent | RecordGroup]:
    """Group `rows` under their records and add the records in the page's time window that
    changed nothing (they have no event to be found by)."""
    record_ids = {e.rollback_record_id for e in rows} - {None}
    records = {
        r.id: r
        for r in session.scalars(select(RollbackRecord).where(RollbackRecord.id.in_(record_ids)))
    }
    entries: list[AuditEvent | RecordGroup] = []
    groups: dict[int, RecordGroup] = {}
    for e in rows:
        rid = e.rollback_record_id
        if rid is None or rid not in records:
            entries.append(e)
        elif rid in groups:
            groups[rid].events.append(e)
        else:
            groups[rid] = RecordGroup(records[rid], [e])
            entries.append(groups[rid])
    # A record lists the flags it changed, and each has its event: an empty list, no events.
    window: list[ColumnElement[bool]] = [func.json_array_length(RollbackRecord.changes) == 0]
    if lower is not None:
        window.append(RollbackRecord.started_at >= lower)
    if upper is not None:
        window.append(RollbackRecord.started_at < upper)
    empty = session.scalars(
        flt.records().where(*window).order_by(RollbackRecord.id.desc()).limit(limit)
    )
    entries.extend(RecordGroup(r) for r in empty)
    for group in groups.values():
        group.events.sort(key=lambda e: e.flag_name)
    # Stable: events of the same instant keep their id order.
    return sorted(entries, key=lambda entry: entry.at, reverse=True)


def changes_since(session: Session, since: datetime) -> list[AuditEvent]:
    """The latest MAX_CHART_CHANGES flag changes at or after `since`, oldest first."""
    rows = session.scalars(
        select(AuditEvent)
        .where(AuditEvent.at >= since)
        .order_by(AuditEvent.id.desc())
        .limit(MAX_CHART_CHANGES)
    )
    return list(rows)[::-1]


def filter_choices(session: Session) -> dict[str, list[str]]:
    """The actors, methods and flags that occur in the history, for the filter menus."""
    return {
        "actors": sorted(set(session.scalars(select(AuditEvent.actor).distinct()))),
        "methods": sorted(set(session.scalars(select(AuditEvent.method).distinct()))),
        "flags": sorted(set(session.scalars(select(AuditEvent.flag_name).distinct()))),
    }
