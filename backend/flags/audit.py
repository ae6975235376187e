"""The append-only, hash-chained audit trail of flag changes."""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import Table, insert, select
from sqlalchemy.orm import Session

from backend.db.reads import one_snapshot
from backend.flags.audit_anchor import AuditAnchor, anchor_of, note_head
from backend.flags.audit_keys import Digest, plain_digest
from backend.flags.checkpoints import RESTART, CheckpointRead
from backend.flags.models import AuditEvent, FlagStoreRow

GENESIS = "0" * 64
# A report lists this many problems at most (a rewrite can break every event after it).
MAX_PROBLEMS = 50
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


def _digest_fields(prev_hash: str, e: Mapping[str, Any], digest: Digest = plain_digest) -> str:
    """The hash of one event (given as its column values) chained after `prev_hash`."""
    return digest((prev_hash + canonical(e)).encode())


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


def _digest(prev_hash: str, event: AuditEvent, digest: Digest = plain_digest) -> str:
    return _digest_fields(prev_hash, {name: getattr(event, name) for name in _HASHED}, digest)


def _chaining(session: Session) -> tuple[str | None, Digest]:
    """The key id new events get and the digest that chains them: HMAC-SHA256 under the
    active audit key when the sessions are anchored, plain SHA-256 otherwise."""
    anchor = anchor_of(session)
    if anchor is None:
        return None, plain_digest
    key_id = anchor.keys.active_id
    digest = anchor.keys.digest(key_id)
    assert digest is not None  # AuditKeys guarantees the active key is in the ring
    return key_id, digest


def _new_head(session: Session, store: FlagStoreRow, head: str, added: int) -> None:
    store.audit_head = head
    store.audit_count += added
    note_head(session, version=int(store.version), events=store.audit_count, head=head)


def append_events(
    session: Session, store: FlagStoreRow, events: list[AuditEvent], *, next_id: int
) -> None:
    """Chain `events` after the store's head; the caller holds the store row's write lock.

    Ids are assigned here, so that each hash covers its event's id and a deleted row shows.
    """
    key_id, digest = _chaining(session)
    prev = store.audit_head or GENESIS
    for offset, event in enumerate(events):
        event.id = next_id + offset
        event.prev_hash = prev
        event.key_id = key_id
        event.hash = _digest(prev, event, digest)
        prev = event.hash
    session.add_all(events)
    _new_head(session, store, prev, len(events))


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
    key_id, digest = _chaining(session)
    rows: list[tuple[Any, ...]] = []
    for offset, c in enumerate(changes):
        event_id = next_id + offset
        body = (
            f'{head}{_encode(c.name)},"id":{event_id},"method":{method_json},'
            f'"new":{_LITERAL[c.new]},"old":{_LITERAL[c.old]}{tail}'
        )
        hashed = digest((prev + body).encode())
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
                hashed,
                key_id,
            )
        )
        prev = hashed
    _insert_many(session, at, rows)
    _new_head(session, store, prev, len(changes))


_PLACEHOLDER = {"qmark": "?", "format": "%s", "pyformat": "%s"}
# Column order of the rows append_changes builds; `at` is shared and goes first.
_BULK_COLUMNS = (*(c for c in _HASHED if c != "at"), "prev_hash", "hash", "key_id")


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
    checked: list[str] = field(default_factory=list)  # what was proven, in words
    first_bad_event: int | None = None
    failed_anchors: list[str] = field(default_factory=list)  # chain, store head, checkpoints
    warnings: list[str] = field(default_factory=list)  # limits of this check, not tampering

    def as_dict(self) -> dict[str, object]:
        return {
            "ok": self.ok,
            "events": self.events,
            "problems": self.problems,
            "first_bad_event": self.first_bad_event,
            "failed_anchors": self.failed_anchors,
            "checked": self.checked,
            "warnings": self.warnings,
        }


class _Findings:
    def __init__(self) -> None:
        self.problems: list[str] = []
        self.anchors: list[str] = []
        self.first_bad: int | None = None

    def add(self, anchor: str, problem: str, event_id: int | None = None) -> None:
        self.problems.append(problem)
        if anchor not in self.anchors:
            self.anchors.append(anchor)
        if event_id is not None and (self.first_bad is None or event_id < self.first_bad):
            self.first_bad = event_id


@contextmanager
def _reading(session: Session, *, within: bool) -> Iterator[Session]:
    """The session the chain is read through: `session` itself inside its own transaction,
    or a session of its own on one snapshot of `session`'s database."""
    if within:
        yield session
        return
    # A session of its own: the caller's transaction, if any, is neither used nor disturbed.
    with Session(session.get_bind()) as own, one_snapshot(own):
        yield own


def verify_chain(
    session: Session, *, anchor: AuditAnchor | None = None, within: bool = False
) -> ChainReport:
    """Recompute the chain and compare it with the stored hashes, the store's head and count,
    and the signed checkpoints of the anchor (by default, the one bound to the session).

    Everything is read from one snapshot of the database (one read transaction), so changes
    committed meanwhile are never mistaken for tampering; the checkpoint file is read first,
    so that each checkpoint it holds is of a change that snapshot includes. The reads go
    through a session of their own on `session`'s database, or, with `within`, through
    `session` in its open transaction: a sync proves the chain with the events it appended
    before it commits them."""
    anchor = anchor or anchor_of(session)
    read = anchor.checkpoints.read() if anchor and anchor.checkpoints else None
    want = {cp.events for cp in read.checkpoints} if read else set()
    found = _Findings()
    at_position: dict[int, str] = {}
    keyed: dict[str, int] = {}
    unkeyed = unverifiable = 0
    first_keyed: int | None = None
    downgraded: list[int] = []
    prev = GENESIS
    expected_id: int | None = None
    count = 0
    with _reading(session, within=within) as own:
        query = select(AuditEvent).order_by(AuditEvent.id).execution_options(yield_per=2000)
        for event in own.scalars(query):
            count += 1
            if expected_id is not None and event.id != expected_id:
                found.add("chain", f"events {expected_id}..{event.id - 1} are missing", expected_id)
            if event.prev_hash != prev:
                found.add(
                    "chain", f"event {event.id}: link to the previous event is broken", event.id
                )
            digest: Digest | None = plain_digest
            if event.key_id is None:
                unkeyed += 1
                if first_keyed is not None:
                    downgraded.append(event.id)
            else:
                first_keyed = first_keyed or event.id
                keyed[event.key_id] = keyed.get(event.key_id, 0) + 1
                digest = anchor.keys.digest(event.key_id) if anchor else None
            if digest is None:
                unverifiable += 1
            elif _digest(event.prev_hash, event, digest) != event.hash:
                found.add(
                    "chain", f"event {event.id}: content does not match its hash (edited)", event.id
                )
            prev = event.hash
            expected_id = event.id + 1
            if count in want:
                at_position[count] = event.hash
        store = own.get(FlagStoreRow, 1)
        if store is not None:
            if store.audit_head and store.audit_head != prev:
                found.add("store head", "the newest events were deleted: chain head does not match")
            if store.audit_count != count:
                found.add(
                    "store head", f"store counts {store.audit_count} events, table holds {count}"
                )
    if downgraded:
        found.add(
            "chain",
            f"event {downgraded[0]}: unkeyed after keyed event {first_keyed}"
            + (f", and {len(downgraded) - 1} more after it" if len(downgraded) > 1 else "")
            + " (rewritten without the key, or written by a process without it)",
            downgraded[0],
        )
    checked = [f"{count} events: ids contiguous, each linked to the one before"]
    if unkeyed:
        checked.append(f"{unkeyed} unkeyed SHA-256 hashes (written before the chain was keyed)")
    for key_id, n in keyed.items():
        checked.append(f"{n} HMAC-SHA256 hashes under audit key {key_id}")
    checked.append("store head and count")
    warnings: list[str] = []
    if unverifiable:
        found.add(
            "chain",
            f"{unverifiable} keyed events cannot be checked: their audit key is not configured "
            "(PCM_AUDIT_KEYS or data/audit_keys.json)",
        )
    if read is not None:
        _check_checkpoints(read, count, at_position, found, checked, warnings, first_keyed)
    else:
        warnings.append("no audit key configured: checkpoints not checked")
    problems = found.problems[:MAX_PROBLEMS]
    if len(found.problems) > MAX_PROBLEMS:
        problems.append(f"... and {len(found.problems) - MAX_PROBLEMS} more problems")
    return ChainReport(
        ok=not found.problems,
        events=count,
        problems=problems,
        checked=checked,
        first_bad_event=found.first_bad,
        failed_anchors=found.anchors,
        warnings=warnings,
    )


def _check_checkpoints(
    read: CheckpointRead,
    count: int,
    at_position: Mapping[int, str],
    found: _Findings,
    checked: list[str],
    warnings: list[str],
    first_keyed: int | None,
) -> None:
    for problem in read.problems:
        found.add("checkpoints", problem)
    beyond = [cp for cp in read.checkpoints if cp.events > count]
    if beyond:
        cp = max(beyond, key=lambda c: c.events)
        found.add(
            "checkpoints",
            f"checkpoint of {cp.at} (version {cp.version}) saw {cp.events} events, the table "
            f"holds {count}: the newest events were deleted (or a backup older than the "
            "checkpoint was restored)",
            count + 1,
        )
    held = [cp for cp in read.checkpoints if 0 < cp.events <= count]
    differ = [cp for cp in held if at_position.get(cp.events) != cp.head]
    if differ:
        cp = min(differ, key=lambda c: c.events)
        good = [c.events for c in held if c.events < cp.events and c not in differ]
        since = f"after event {max(good)}, " if good else ""
        found.add(
            "checkpoints",
            f"checkpoint of {cp.at} (version {cp.version}) does not match: the chain was "
            f"rewritten {since}up to event {cp.events}"
            + (f" ({len(differ)} checkpoints differ)" if len(differ) > 1 else ""),
        )
    if read.checkpoints and read.checkpoints[0].kind == RESTART:
        first = read.checkpoints[0]
        checked.append(
            f"checkpoints restarted at {first.at} ({first.note}), at event {first.events}"
        )
    if read.checkpoints:
        newest = max(read.checkpoints, key=lambda cp: cp.events)
        checked.append(
            f"{len(read.checkpoints)} signed checkpoints, the newest at event {newest.events}"
        )
    elif first_keyed is not None:
        warnings.append(
            "keyed events but no signed checkpoint found: the checkpoint file is missing or "
            "empty, so deleting the newest events cannot be detected"
        )


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
