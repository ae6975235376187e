"""Flags and the audit chain in a sync: origin audit events re-appended onto the local chain,
and flags changed later on the origin changed here too, as changes of their own."""

from __future__ import annotations

from sqlalchemy import Table, insert, update

from backend.db.merge_rows import Merge, Row
from backend.flags.audit import append_events, next_event_id
from backend.flags.models import AuditEvent, FlagRow
from backend.flags.service import lock_store

SYNC_METHOD = "sync"
_FLAGS: Table = FlagRow.__table__  # type: ignore[assignment]
_EVENTS: Table = AuditEvent.__table__  # type: ignore[assignment]


def plan_flags(merge: Merge, table: Table) -> None:
    """A flag missing here is added; a flag whose origin row was updated later and holds
    another value takes it. Metadata (description, phase, ...) follows the code, not a side."""
    stats = merge.stats(table)
    here = {r["name"]: r for r in merge.local_rows(table)}
    for there in merge.rows[table.name]:
        stats.origin_rows += 1
        mine = here.get(there["name"])
        if mine is None:
            merge.flags.append((None, there))
            stats.merged += 1
        elif there["updated_at"] > mine["updated_at"] and there["enabled"] != mine["enabled"]:
            merge.flags.append((mine, there))
            stats.updated += 1
        else:
            stats.already_here += 1


def plan_events(merge: Merge, table: Table) -> None:
    """The origin events not here yet, to be re-appended in their time order (same rule as
    the other append-only tables: same id and content, or merged before, is here)."""
    stats = merge.stats(table)
    here = {r["id"]: r for r in merge.local_rows(table)}
    for row in merge.rows[table.name]:
        stats.origin_rows += 1
        values = merge.remapped(table, row)
        local_id = merge.known(table, row["id"]) or (
            row["id"] if here.get(row["id"]) == values else None
        )
        if local_id is not None:
            merge.ids.setdefault(table.name, {})[row["id"]] = local_id
            stats.already_here += 1
        else:
            merge.events.append(values)
            stats.merged += 1


def finish_chain(merge: Merge, *, actor: str) -> None:
    """Write the planned flags and events under one new store version (running servers load
    the changed flags by it), the events chained after the local head under the local key."""
    if not merge.events and not merge.flags:
        return
    store = lock_store(merge.session)
    origin_events = sorted(merge.events, key=lambda e: (e["at"], e["id"]))
    events = [_reappended(e, store.version) for e in origin_events]
    for mine, there in merge.flags:
        if mine is None:
            merge.session.execute(insert(_FLAGS).values(**{**there, "version": store.version}))
            continue
        merge.session.execute(
            update(_FLAGS)
            .where(_FLAGS.c.name == there["name"])
            .values(
                enabled=there["enabled"],
                updated_at=there["updated_at"],
                updated_by=there["updated_by"],
                version=store.version,
            )
        )
        events.append(_sync_event(merge, mine, there, actor=actor, version=store.version))
        merge.report.flags_updated.append(there["name"])
    append_events(merge.session, store, events, next_id=next_event_id(merge.session))
    for origin, event in zip(origin_events, events, strict=False):
        merge.note_merged(_EVENTS, origin["id"], event.id)
    merge.report.audit_events_appended = len(events)


def _reappended(e: Row, version: int) -> AuditEvent:
    """An origin event as a new local one: what happened is kept, the chain fields are new."""
    return AuditEvent(
        at=e["at"],
        flag_name=e["flag_name"],
        actor=e["actor"],
        method=e["method"],
        old_value=e["old_value"],
        new_value=e["new_value"],
        reason=e["reason"],
        version=version,
        rollback_record_id=e["rollback_record_id"],
    )


def _sync_event(merge: Merge, mine: Row, there: Row, *, actor: str, version: int) -> AuditEvent:
    return AuditEvent(
        at=merge.now,
        flag_name=there["name"],
        actor=actor,
        method=SYNC_METHOD,
        old_value=mine["enabled"],
        new_value=there["enabled"],
        reason=(
            f"synced from {merge.origin}: set there by {there['updated_by']} "
            f"at {there['updated_at'].isoformat()}"
        ),
        version=version,
    )
