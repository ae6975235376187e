"""The append-only, hash-chained audit trail of flag changes."""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import Table, insert, select
from sqlalchemy.orm import Session

from backend.flags.models import AuditEvent, FlagStoreRow

GENESIS = "0" * 64
_EVENTS: Table = AuditEvent.__table__  # type: ignore[assignment]


# Strings repeat across the events of one rollback (actor, method, reason, timestamp): encode
# each once. json.dumps of a str is pure, so a cache cannot change a hash.
_encode = functools.lru_cache(maxsize=4096)(json.dumps)
_LITERAL = {True: "true", False: "false", None: "null"}


def canonical(e: Mapping[str, Any]) -> str:
    """The event's hashed body: byte for byte `json.dumps(body, sort_keys=True,
    separators=(",", ":"))`, written out by hand because it is computed once per audit event."""
    record = e["rollback_record_id"]
    return (
        f'{{"actor":{_encode(e["actor"])},"at":{_encode(e["at"].isoformat())},'
        f'"flag":{_encode(e["flag_name"])},"id":{int(e["id"])},"method":{_encode(e["method"])},'
        f'"new":{_LITERAL[e["new_value"]]},"old":{_LITERAL[e["old_value"]]},'
        f'"reason":{_encode(e["reason"])},"record":{"null" if record is None else int(record)},'
        f'"version":{int(e["version"])}}}'
    )


def _digest_fields(prev_hash: str, e: Mapping[str, Any]) -> str:
    """The hash of one event (given as its column values) chained after `prev_hash`."""
    return hashlib.sha256((prev_hash + canonical(e)).encode()).hexdigest()


_HASHED = (
    "id",
    "at",
    "flag_name",
    "actor",
    "method",
    "old_value",
    "new_value",
    "reason",
    "version",
    "rollback_record_id",
)


def _digest(prev_hash: str, event: AuditEvent) -> str:
    return _digest_fields(prev_hash, {name: getattr(event, name) for name in _HASHED})


def append_events(
    session: Session, store: FlagStoreRow, events: list[AuditEvent], *, next_id: int
) -> None:
    """Chain `events` after the store's head; the caller holds the store row's write lock.

    Ids are assigned here, so that each hash covers its event's id and a deleted row shows.
    """
    prev = store.audit_head or GENESIS
    for offset, event in enumerate(events):
        event.id = next_id + offset
        event.prev_hash = prev
        event.hash = _digest(prev, event)
        prev = event.hash
    session.add_all(events)
    store.audit_head = prev
    store.audit_count += len(events)


class FlagChange(Protocol):
    """One change of a bulk append: what differs from event to event."""

    @property
    def name(self) -> str: ...
    @property
    def old(self) -> bool: ...
    @property
    def new(self) -> bool: ...


def append_changes(
    session: Session,
    store: FlagStoreRow,
    changes: Sequence[FlagChange],
    *,
    at: datetime,
    actor: str,
    method: str,
    reason: str,
    rollback_record_id: int | None,
    next_id: int,
) -> None:
    """Chain an event per change after the store's head, for many changes at once (an
    emergency rollback of a thousand flags): the values every event shares are encoded once,
    each body is hashed as plain values, and the rows go to the driver in one executemany
    instead of one ORM object each. The caller holds the store row's write lock.

    The hashed body is byte for byte `canonical()` of the stored event; verify_chain, which
    recomputes it from the rows, proves it."""
    if not changes:
        return
    record = "null" if rollback_record_id is None else str(int(rollback_record_id))
    version = int(store.version)
    head = f'{{"actor":{_encode(actor)},"at":{_encode(at.isoformat())},"flag":'
    tail = f',"reason":{_encode(reason)},"record":{record},"version":{version}}}'
    method_json = _encode(method)
    prev = store.audit_head or GENESIS
    sha256 = hashlib.sha256
    rows: list[tuple[Any, ...]] = []
    for offset, c in enumerate(changes):
        event_id = next_id + offset
        body = (
            f'{head}{_encode(c.name)},"id":{event_id},"method":{method_json},'
            f'"new":{_LITERAL[c.new]},"old":{_LITERAL[c.old]}{tail}'
        )
        digest = sha256((prev + body).encode()).hexdigest()
        rows.append(
            (
                event_id,
                c.name,
                actor,
                method,
                c.old,
                c.new,
                reason,
                version,
                rollback_record_id,
                prev,
                digest,
            )
        )
        prev = digest
    _insert_many(session, at, rows)
    store.audit_head = prev
    store.audit_count += len(changes)


_PLACEHOLDER = {"qmark": "?", "format": "%s", "pyformat": "%s"}
# Column order of the rows append_changes builds; `at` is shared and goes first.
_BULK_COLUMNS = (*(c for c in _HASHED if c != "at"), "prev_hash", "hash")


def _insert_many(session: Session, at: datetime, rows: list[tuple[Any, ...]]) -> None:
    """One executemany straight to the driver: SQLAlchemy's per-row parameter processing costs
    more than the INSERT itself for a thousand events. Only the shared timestamp needs the
    column type's conversion, so it is converted once."""
    conn = session.connection()
    dialect = conn.dialect
    mark = _PLACEHOLDER.get(dialect.paramstyle)
    if mark is None:  # a driver with named parameters: through Core, with per-row processing
        session.execute(
            insert(_EVENTS), [dict(zip(_BULK_COLUMNS, row, strict=True), at=at) for row in rows]
        )
        return
    process = _EVENTS.c.at.type.dialect_impl(dialect).bind_processor(dialect)
    stamp = process(at) if process else at
    columns = ("at", *_BULK_COLUMNS)
    if dialect.name == "postgresql" and len(rows) > 1:
        # COPY on the transaction's own connection: psycopg's executemany would still send one
        # INSERT per event (pipelined), several times the cost for a thousand of them.
        driver: Any = conn.connection.driver_connection
        with (
            driver.cursor() as cursor,
            cursor.copy(f"COPY {_EVENTS.name} ({', '.join(columns)}) FROM STDIN") as copy,
        ):
            for row in rows:
                copy.write_row((stamp, *row))
        return
    sql = (
        f"INSERT INTO {_EVENTS.name} ({', '.join(columns)}) "
        f"VALUES ({', '.join([mark] * len(columns))})"
    )
    conn.exec_driver_sql(sql, [(stamp, *row) for row in rows])


def next_event_id(session: Session) -> int:
    last = session.scalar(select(AuditEvent.id).order_by(AuditEvent.id.desc()).limit(1))
    return (last or 0) + 1


@dataclass(frozen=True, slots=True)
class ChainReport:
    ok: bool
    events: int
    problems: list[str]

    def as_dict(self) -> dict[str, object]:
        return {"ok": self.ok, "events": self.events, "problems": self.problems}


def verify_chain(session: Session) -> ChainReport:
    """Recompute the chain and compare it with the stored hashes and the store's head."""
    problems: list[str] = []
    prev = GENESIS
    expected_id: int | None = None
    count = 0
    for event in session.scalars(select(AuditEvent).order_by(AuditEvent.id)):
        count += 1
        if expected_id is not None and event.id != expected_id:
            problems.append(f"events {expected_id}..{event.id - 1} are missing")
        if event.prev_hash != prev:
            problems.append(f"event {event.id}: link to the previous event is broken")
        if _digest(event.prev_hash, event) != event.hash:
            problems.append(f"event {event.id}: content does not match its hash (edited)")
        prev = event.hash
        expected_id = event.id + 1
    store = session.get(FlagStoreRow, 1)
    if store is not None:
        if store.audit_head and store.audit_head != prev:
            problems.append("the newest events were deleted: chain head does not match")
        if store.audit_count != count:
            problems.append(f"store counts {store.audit_count} events, table holds {count}")
    return ChainReport(ok=not problems, events=count, problems=problems)


def event_as_dict(event: AuditEvent) -> dict[str, object]:
    at: datetime = event.at
    return {
        "id": event.id,
        "at": at.isoformat(),
        "flag_name": event.flag_name,
        "actor": event.actor,
        "method": event.method,
        "old_value": event.old_value,
        "new_value": event.new_value,
        "reason": event.reason,
        "version": event.version,
        "rollback_record_id": event.rollback_record_id,
        "hash": event.hash,
    }
