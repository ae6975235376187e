"""Flag use cases on an open transaction: seed, toggle, rollback. Callers own the transaction."""

from __future__ import annotations

import time
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import NamedTuple

from sqlalchemy import ColumnElement, and_, func, select, true, update
from sqlalchemy.orm import Session

from backend.db.base import utcnow
from backend.flags import notify
from backend.flags.audit import append_changes, append_events, next_event_id
from backend.flags.errors import FlagNotFound, FlagStoreUnavailable, RollbackModeActive
from backend.flags.last_known import FlagRecord, iso_utc
from backend.flags.models import AuditEvent, FlagRow, FlagStoreRow, RollbackRecord
from backend.flags.registry import DEFAULT_FLAGS, MAX_FLAG_NAME_LENGTH, FlagDefinition


class Change(NamedTuple):
    name: str
    old: bool
    new: bool
    requires_restart: bool

    @property
    def changed(self) -> bool:
        return self.old != self.new


class Toggled(NamedTuple):
    change: Change
    version: int
    flag: FlagRecord  # the row as this change wrote it


@dataclass(slots=True)
class RollbackOutcome:
    record_id: int | None  # None: a flag rollback that found nothing to change records nothing
    version: int
    at: datetime  # the changed flags' updated_at
    changes: list[Change] = field(default_factory=list)
    verification: str = "pending"


def lock_store(session: Session, *, bump: bool = True) -> FlagStoreRow:
    """Bump the store version first: on SQLite and PostgreSQL alike this takes the write lock,
    so concurrent changes (and the audit chain) are serialized and none is lost.

    `bump=False` takes the same lock without a new version: for a rollback record that
    changes no flag (an emergency rollback with every flag at its rollback value already)."""
    values = (
        {"version": FlagStoreRow.version + 1, "updated_at": utcnow()}
        if bump
        else {"version": FlagStoreRow.version}
    )
    result = session.execute(update(FlagStoreRow).where(FlagStoreRow.id == 1).values(**values))
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise FlagStoreUnavailable("the flag store is not initialised: run backend/db/init_db.py")
    store = session.get(FlagStoreRow, 1, populate_existing=True)
    assert store is not None
    if bump:
        notify.announce(session, store.version)  # sent on commit, to every listening worker
    return store


def store_version(session: Session) -> int:
    """The store's version as this transaction sees it (nothing changed: no new one)."""
    version = session.scalar(select(FlagStoreRow.version).where(FlagStoreRow.id == 1))
    if version is None:
        raise FlagStoreUnavailable("the flag store is not initialised: run backend/db/init_db.py")
    return version


def _record_of(row: FlagRow) -> FlagRecord:
    return FlagRecord(
        row.name,
        row.enabled,
        row.rollback_value,
        row.requires_restart,
        row.description,
        row.phase,
        row.risk,
        iso_utc(row.updated_at),
        row.updated_by,
    )


def seed_flags(
    session: Session, definitions: Iterable[FlagDefinition] = DEFAULT_FLAGS
) -> list[str]:
    """Create the store row and any missing flag; existing state is never overwritten."""
    if session.get(FlagStoreRow, 1) is None:
        session.add(FlagStoreRow(id=1, version=0, audit_head="", audit_count=0))
        session.flush()
    existing = set(session.scalars(select(FlagRow.name)))
    added: list[str] = []
    written: list[FlagRow] = []
    for d in definitions:
        if d.name in existing:
            row = session.get(FlagRow, d.name)
            assert row is not None
            # Metadata follows the code; the stored on/off state is the operators'.
            metadata = (d.description, d.phase, str(d.risk), d.rollback_value, d.requires_restart)
            if metadata != (
                row.description,
                row.phase,
                row.risk,
                row.rollback_value,
                row.requires_restart,
            ):
                row.description, row.phase, row.risk = d.description, d.phase, str(d.risk)
                row.rollback_value, row.requires_restart = d.rollback_value, d.requires_restart
                written.append(row)
            continue
        row = _new_row(d, actor="init_db")
        session.add(row)
        written.append(row)
        added.append(d.name)
    if written:
        # A new version, so that running processes load the new and changed flags.
        version = lock_store(session).version
        for row in written:
            row.version = version
    return added


def _new_row(d: FlagDefinition, *, actor: str) -> FlagRow:
    return FlagRow(
        name=d.name,
        description=d.description,
        phase=d.phase,
        risk=str(d.risk),
        rollback_value=d.rollback_value,
        requires_restart=d.requires_restart,
        enabled=d.default,
        updated_by=actor,
    )


def _checked_name(name: str) -> str:
    if not name or len(name) > MAX_FLAG_NAME_LENGTH:
        raise FlagNotFound(name)
    return name


def set_flag(
    session: Session,
    *,
    name: str,
    enabled: bool,
    actor: str,
    method: str,
    reason: str = "",
    rollback_mode: bool = False,
) -> Toggled:
    """Store one flag's new value with its audit event; returns the change, the new version
    and the flag as written. A flag that has the value already is left alone: no audit
    event, no new version (the change returned says old == new, at the current version)."""
    _checked_name(name)
    # The flag and the store's version in one statement: one snapshot, so that a flag found
    # at the value asked for is answered with a version at which it had it.
    found = session.execute(
        select(FlagRow, FlagStoreRow.version)
        .join(FlagStoreRow, FlagStoreRow.id == 1)
        .where(FlagRow.name == name)
    ).first()
    if found is None:
        store_version(session)  # an uninitialised store says so, not "unknown flag"
        raise FlagNotFound(name)
    row, seen_version = found
    # After the lookup, so that an unknown name is a 404 in rollback mode too.
    if rollback_mode and enabled:
        raise RollbackModeActive(
            f"cannot enable {name!r}: rollback mode is on"
            " (FEATURE_FLAG_ROLLBACK_MODE_ENABLED=true);"
            " unset it and restart to enable flags again"
        )
    if row.enabled == enabled:
        # Read without the write lock: the answer is the state this transaction saw.
        return Toggled(
            Change(name, enabled, enabled, row.requires_restart), seen_version, _record_of(row)
        )
    store = lock_store(session)
    session.refresh(row)  # as it is now that this transaction holds the lock
    change = Change(name, row.enabled, enabled, row.requires_restart)
    if not change.changed:  # another change got there first, in between
        return Toggled(change, store.version, _record_of(row))
    row.enabled, row.updated_at, row.updated_by = enabled, utcnow(), actor
    row.version = store.version
    written = _record_of(row)
    append_events(
        session,
        store,
        [
            AuditEvent(
                at=utcnow(),
                flag_name=name,
                actor=actor,
                method=method,
                old_value=change.old,
                new_value=enabled,
                reason=reason,
                version=store.version,
            )
        ],
        next_id=next_event_id(session),
    )
    return Toggled(change, store.version, written)


def rollback_flags(
    session: Session,
    *,
    names: list[str] | None,
    actor: str,
    method: str,
    reason: str = "",
    exclude: Collection[str] = (),
    record_unchanged: bool | None = None,
) -> RollbackOutcome:
    """Set the named flags (all when None) to their rollback values, with audit and a record;
    the flags in `exclude` are left as they are (a replayed journal entry superseded for them).

    When no flag needs to change, nothing is written (no audit event, no new version) and
    there is no record, except when `record_unchanged` (by default: for the emergency
    rollback, names=None), whose record then says that nothing needed changing.

    Set-based: one UPDATE for every flag, one INSERT for every audit event, so that rolling
    back a thousand flags costs a few statements, not a few thousand ORM operations."""
    started = time.perf_counter()
    if record_unchanged is None:
        record_unchanged = names is None
    scope: ColumnElement[bool] = FlagRow.name.in_(names) if names is not None else true()
    if names is not None:
        for name in names:
            _checked_name(name)
    if exclude:
        scope = and_(scope, FlagRow.name.not_in(list(exclude)))

    def read() -> tuple[list[Change], int | None]:
        """The flags in scope and the store's version, in one statement (one snapshot)."""
        rows = session.execute(
            select(
                FlagRow.name,
                FlagRow.enabled,
                FlagRow.rollback_value,
                FlagRow.requires_restart,
                FlagStoreRow.version,
            )
            .join(FlagStoreRow, FlagStoreRow.id == 1)
            .where(scope)
            .order_by(FlagRow.name)
        ).all()
        changes = [Change(r.name, r.enabled, r.rollback_value, r.requires_restart) for r in rows]
        return changes, (rows[0].version if rows else None)

    def check_names(found: list[Change]) -> None:
        if names is not None:
            missing = sorted(set(names) - {c.name for c in found} - set(exclude))
            if missing:
                store_version(session)  # an uninitialised store says so, not "unknown flag"
                raise FlagNotFound(missing[0])

    changes, seen = read()  # first without the write lock: nothing to do takes none
    check_names(changes)
    if not record_unchanged and not any(c.changed for c in changes):
        at = store_version(session) if seen is None else seen
        return RollbackOutcome(None, at, utcnow(), changes, "success")
    bumped = any(c.changed for c in changes)
    store = lock_store(session, bump=bumped)
    changes, _ = read()  # as they are now that this transaction holds the lock
    check_names(changes)
    now = utcnow()
    changed = [c for c in changes if c.changed]
    if changed and not bumped:  # a flag was changed in between: this needs a version too
        store = lock_store(session)
    elif not changed and not record_unchanged:  # another rollback got there in between
        return RollbackOutcome(None, store.version, now, changes, "success")
    if changed:
        session.execute(
            update(FlagRow)
            .where(scope, FlagRow.enabled != FlagRow.rollback_value)
            .values(
                enabled=FlagRow.rollback_value,
                updated_at=now,
                updated_by=actor,
                version=store.version,
            )
            .execution_options(synchronize_session=False)
        )
    record = RollbackRecord(
        started_at=now,
        feature="ALL" if names is None else ",".join(sorted(set(names))),
        trigger=reason,
        method=method,
        actor=actor,
        version=store.version,
        changes=[{"flag": c.name, "from": c.old, "to": c.new} for c in changed],
    )
    session.add(record)
    session.flush()
    append_changes(
        session,
        store,
        changed,
        at=now,
        actor=actor,
        method=method,
        reason=reason,
        rollback_record_id=record.id,
        next_id=next_event_id(session),
    )
    # Verification: read the rows back inside the transaction before it commits.
    wrong = session.scalar(
        select(func.count())
        .select_from(FlagRow)
        .where(scope, FlagRow.enabled != FlagRow.rollback_value)
    )
    record.verification = "success" if not wrong else "failed"
    record.duration_ms = (time.perf_counter() - started) * 1000
    return RollbackOutcome(record.id, store.version, now, changes, record.verification)


def create_flag(session: Session, definition: FlagDefinition, *, actor: str) -> None:
    """Register a flag that is not in the built-in registry (used by tests and benchmarks)."""
    _checked_name(definition.name)
    row = _new_row(definition, actor=actor)
    row.version = lock_store(session).version
    session.add(row)
