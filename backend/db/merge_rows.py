"""The state of one sync in progress and the rules that merge the origin's rows of one table
into the local one (see backend.db.merge for the whole)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Integer, Table, insert, select, update
from sqlalchemy.orm import Session

from backend.core.primary_file import Backend
from backend.db.base import utcnow

Row = dict[str, Any]


class SyncError(Exception):
    """The sync did not happen; nothing was changed."""


class SyncRefused(SyncError):
    """The two databases cannot be synced as they are (schema, same database)."""


class OriginUnreachable(SyncError):
    """The database to sync from does not answer."""


class SyncFailed(SyncError):
    """The merge did not verify (audit chain, a row that refers to nothing)."""


class ParentGone(Exception):
    """An origin row belongs to a row deleted here since the last sync (a credential of a
    provider deleted here): it goes with its parent."""


@dataclass
class TableSync:
    """What happened to one table's origin rows."""

    origin_rows: int = 0
    already_here: int = 0
    merged: int = 0  # added here
    updated: int = 0  # present on both; the origin's newer state taken
    deleted_here: int = 0  # older than the last sync and gone here: deleted here, left so


@dataclass
class SyncReport:
    origin: str
    local: str
    dry_run: bool
    tables: dict[str, TableSync] = field(default_factory=dict)
    flags_updated: list[str] = field(default_factory=list)
    audit_events_appended: int = 0
    chain_verified: bool = False
    chain_events: int = 0

    @property
    def changed(self) -> int:
        """Rows added or updated here (or that would be, in a dry run)."""
        return sum(t.merged + t.updated for t in self.tables.values())

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "changed": self.changed}


@dataclass
class Merge:
    """One sync in progress: the local transaction, the origin's rows, the ids mapped so far."""

    session: Session
    origin: Backend
    local: Backend
    rows: Mapping[str, list[Row]]
    report: SyncReport
    # (table, origin id) -> local id: rows an earlier sync merged here ...
    merged_before: dict[tuple[str, int], int]
    # ... and rows the origin got from here (its own sync_merged_rows about this side).
    from_here: dict[tuple[str, int], int]
    # When every origin row was here too (the last sync or copy); None: unknown.
    since: datetime | None = None
    ids: dict[str, dict[int, int]] = field(default_factory=dict)
    gone: dict[str, set[Any]] = field(default_factory=dict)  # origin ids deleted here
    recorded: list[Row] = field(default_factory=list)  # the sync_merged_rows to add
    # Written once every table is through (backend.db.merge_chain): origin audit events to
    # re-append, and flags to add (here None) or to update.
    events: list[Row] = field(default_factory=list)
    flags: list[tuple[Row | None, Row]] = field(default_factory=list)
    now: datetime = field(default_factory=utcnow)

    def stats(self, table: Table) -> TableSync:
        return self.report.tables.setdefault(table.name, TableSync())

    def known(self, table: Table, origin_id: int) -> int | None:
        """The local id of an origin row that a sync brought over before, either way."""
        key = (table.name, origin_id)
        return self.merged_before.get(key, self.from_here.get(key))

    def remapped(self, table: Table, row: Row) -> Row:
        """The origin row with its foreign keys turned into local ids. A parent deleted here
        leaves a nullable key empty (as its ON DELETE SET NULL did here) and takes the row
        with it otherwise (ParentGone)."""
        values = dict(row)
        for column in table.columns:
            for fk in column.foreign_keys:
                value = values[column.name]
                if value is None:
                    continue
                parent = fk.column.table.name
                if value in self.gone.get(parent, ()):
                    if not column.nullable:
                        raise ParentGone(parent)
                    values[column.name] = None
                    continue
                local_id = self.ids.get(parent, {}).get(value)
                if local_id is None:
                    raise SyncFailed(
                        f"{table.name} row {row.get('id')} refers to {parent} "
                        f"{value}, which the sync did not bring over"
                    )
                values[column.name] = local_id
        return values

    def deleted_here(self, table: Table, row: Row, born: str | None) -> bool:
        """Whether an origin row missing here was here at the last sync, so was deleted here
        since (a signed-out session, a deleted provider): it is not brought back."""
        if born is None or self.since is None or row[born] is None or row[born] > self.since:
            return False
        self.gone.setdefault(table.name, set()).add(row[primary_key(table)[0]])
        self.stats(table).deleted_here += 1
        return True

    def local_rows(self, table: Table) -> list[Row]:
        return [dict(r) for r in self.session.execute(select(table)).mappings()]

    def add(self, table: Table, values: Row) -> None:
        """Insert an origin row here; a serial id is given anew, mapped and recorded (a key
        of another kind, a name or a random id, is the row's identity and stays)."""
        if not has_serial_id(table):
            self.session.execute(insert(table).values(**values))
            return
        row = {k: v for k, v in values.items() if k != "id"}
        result = self.session.execute(insert(table).values(**row).returning(table.c.id))
        self.note_merged(table, int(values["id"]), int(result.scalar_one()))

    def note_merged(self, table: Table, origin_id: int, local_id: int) -> None:
        self.ids.setdefault(table.name, {})[origin_id] = local_id
        self.recorded.append(
            {
                "origin": self.origin,
                "table_name": table.name,
                "origin_id": origin_id,
                "local_id": local_id,
                "merged_at": self.now,
            }
        )


def primary_key(table: Table) -> list[str]:
    return [c.name for c in table.primary_key.columns]


def has_serial_id(table: Table) -> bool:
    """An integer id the database assigns: a merged row gets a new one here."""
    return primary_key(table) == ["id"] and isinstance(table.c.id.type, Integer)


def merge_appended(
    merge: Merge, table: Table, *, unique: tuple[str, ...] = (), born: str | None = None
) -> None:
    """Add the origin rows that are not here yet. `unique`: columns that allow one row per
    value here (one acknowledgement per record, one metrics row per worker and minute): an
    origin row whose values are taken here already is kept as here. `born`: the column of
    the row's time, for a table whose old rows are deleted (see Merge.deleted_here)."""
    stats = merge.stats(table)
    here = {r["id"]: r for r in merge.local_rows(table)}
    taken = {tuple(r[c] for c in unique): r["id"] for r in here.values()} if unique else {}
    for row in merge.rows[table.name]:
        stats.origin_rows += 1
        try:
            values = merge.remapped(table, row)
        except ParentGone:
            stats.deleted_here += 1
            continue
        same = here.get(row["id"]) == values
        local_id = merge.known(table, row["id"]) or (row["id"] if same else None)
        if local_id is None and unique:
            local_id = taken.get(tuple(values[c] for c in unique))
        if local_id is not None:
            merge.ids.setdefault(table.name, {})[row["id"]] = local_id
            stats.already_here += 1
        elif not merge.deleted_here(table, row, born):
            merge.add(table, values)
            stats.merged += 1


Changes = Callable[[Row, Row], Row]


def merge_keyed(
    merge: Merge, table: Table, *, key: tuple[str, ...], changes: Changes, born: str | None
) -> None:
    """Match the origin rows to local ones by their natural key `key` (after remapping): a
    missing row is added, unless it was deleted here since the last sync (`born`: the column
    of its creation time, see Merge.deleted_here); for a row on both sides, `changes(here,
    there)` says which columns take the origin's values (none: it is kept as here)."""
    stats = merge.stats(table)
    pk = primary_key(table)
    by_key = {tuple(r[c] for c in key): r for r in merge.local_rows(table)}
    for row in merge.rows[table.name]:
        stats.origin_rows += 1
        try:
            values = merge.remapped(table, row)
        except ParentGone:
            stats.deleted_here += 1
            continue
        here = by_key.get(tuple(values[c] for c in key))
        if here is None:
            if not merge.deleted_here(table, row, born):
                merge.add(table, values)
                stats.merged += 1
            continue
        if has_serial_id(table):
            merge.ids.setdefault(table.name, {})[row["id"]] = here["id"]
        taken = changes(here, values)
        if has_serial_id(table):
            taken.pop("id", None)  # the local row keeps its id
        if not taken:
            stats.already_here += 1
            continue
        where = [table.c[c] == here[c] for c in pk]
        merge.session.execute(update(table).where(*where).values(**taken))
        stats.updated += 1


def kept_here(_here: Row, _there: Row) -> Row:
    """No time says which side is newer: the local (primary) row stays as it is."""
    return {}


def newer_by(column: str) -> Changes:
    """The origin's row wins when its `column` is later: every column that differs is taken
    (a credential's id too, which its encryption is bound to; a serial id never, see
    merge_keyed)."""

    def changes(here: Row, there: Row) -> Row:
        if there[column] is None or (here[column] is not None and there[column] <= here[column]):
            return {}
        return {c: v for c, v in there.items() if here[c] != v}

    return changes


def _later(a: datetime | None, b: datetime | None) -> datetime | None:
    return b if a is None or (b is not None and b > a) else a


def _earlier(a: datetime | None, b: datetime | None) -> datetime | None:
    return b if a is None or (b is not None and b < a) else a


def user_changes(here: Row, there: Row) -> Row:
    """A password changed later on the origin is taken; a user disabled on either side stays
    disabled (a lost disable would reopen an account); the last sign-in is the later one; the
    role, with no time to compare, stays as here."""
    taken: Row = {}
    if there["password_changed_at"] > here["password_changed_at"]:
        taken.update(
            password_hash=there["password_hash"], password_changed_at=there["password_changed_at"]
        )
    if there["disabled"] and not here["disabled"]:
        taken["disabled"] = True
    last = _later(here["last_login_at"], there["last_login_at"])
    if last != here["last_login_at"]:
        taken["last_login_at"] = last
    return taken


def token_changes(here: Row, there: Row) -> Row:
    """A token revoked on either side stays revoked (from the earlier revocation); its last
    use is the later one."""
    taken: Row = {}
    revoked = _earlier(here["revoked_at"], there["revoked_at"])
    if revoked != here["revoked_at"]:
        taken["revoked_at"] = revoked
    used = _later(here["last_used_at"], there["last_used_at"])
    if used != here["last_used_at"]:
        taken["last_used_at"] = used
    return taken
