"""What one database holds that another lacks, in the append-only tables: the test that tells a
copy which way it may go, and what `pcm-ops db status` calls unsynced.

Rows are matched by id (audit events by id and hash, so a rewritten chain does not pass as the
same). A row that a sync already merged from the other side (recorded in `sync_merged_rows`
with that side as origin, under a new local id) counts as present on both sides.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Table, inspect, select
from sqlalchemy.engine import Connection

from backend.core.primary_file import Backend
from backend.db.sync_models import SyncedRow
from backend.db.tables import app_tables

# The tables only ever appended to, and the column that says when each row was written.
APPEND_ONLY: dict[str, str] = {
    "flag_audit_events": "at",
    "rollback_records": "started_at",
    "aws_tool_runs": "started_at",
}
BACKEND_NAMES: dict[Backend, str] = {"sqlite": "the SQLite file", "postgresql": "PostgreSQL"}

_SYNCED: Table = SyncedRow.__table__  # type: ignore[assignment]


@dataclass(frozen=True)
class Side:
    """One side's rows of one append-only table: id -> (match key, written at)."""

    rows: dict[int, tuple[object, datetime | None]]


@dataclass(frozen=True)
class Missing:
    """The rows of `holder` that `other` lacks, per append-only table."""

    counts: dict[str, int]
    newest: datetime | None

    @property
    def total(self) -> int:
        return sum(self.counts.values())


@dataclass(frozen=True)
class Divergence:
    source_only: Missing
    target_only: Missing

    @property
    def diverged(self) -> bool:
        return self.source_only.total > 0 and self.target_only.total > 0


def backend_of(conn: Connection) -> Backend:
    return "postgresql" if conn.dialect.name == "postgresql" else "sqlite"


def _table(name: str) -> Table:
    return next(t for t in app_tables() if t.name == name)


def _side(conn: Connection, name: str) -> Side:
    table = _table(name)
    stamp = table.c[APPEND_ONLY[name]]
    key = table.c.hash if name == "flag_audit_events" else table.c.id
    rows = conn.execute(select(table.c.id, key, stamp)).all()
    return Side({int(r[0]): (r[1], r[2]) for r in rows})


def _merged(conn: Connection, origin: Backend) -> dict[str, dict[int, int]]:
    """Per table: id on `origin` -> id here, for the rows a sync brought from `origin`."""
    out: dict[str, dict[int, int]] = {}
    if not inspect(conn).has_table(_SYNCED.name):
        return out
    query = select(_SYNCED.c.table_name, _SYNCED.c.origin_id, _SYNCED.c.local_id).where(
        _SYNCED.c.origin == origin
    )
    for table_name, origin_id, local_id in conn.execute(query):
        out.setdefault(table_name, {})[int(origin_id)] = int(local_id)
    return out


def _absent(holder: Side, other: Side, holder_to_other: dict[int, int]) -> list[datetime | None]:
    """When each row of `holder` that `other` lacks was written."""
    missing: list[datetime | None] = []
    for row_id, (key, at) in holder.rows.items():
        mapped = holder_to_other.get(row_id)
        if mapped is not None:
            present = mapped in other.rows
        else:
            found = other.rows.get(row_id)
            present = found is not None and found[0] == key
        if not present:
            missing.append(at)
    return missing


def _missing(per_table: dict[str, list[datetime | None]]) -> Missing:
    stamps = [at for ats in per_table.values() for at in ats if at is not None]
    return Missing({t: len(a) for t, a in per_table.items()}, max(stamps) if stamps else None)


def compare(source: Connection, target: Connection) -> Divergence:
    """What each side holds that the other lacks; both connections read one snapshot each and
    must have the schema."""
    src_backend, tgt_backend = backend_of(source), backend_of(target)
    # source id -> target id: rows the source merged from the target, and the reverse.
    src_from_tgt = _merged(source, tgt_backend)
    tgt_from_src = _merged(target, src_backend)
    source_only: dict[str, list[datetime | None]] = {}
    target_only: dict[str, list[datetime | None]] = {}
    for name in APPEND_ONLY:
        src, tgt = _side(source, name), _side(target, name)
        src_to_tgt = {local: origin for origin, local in src_from_tgt.get(name, {}).items()}
        src_to_tgt.update(tgt_from_src.get(name, {}))
        tgt_to_src = {t: s for s, t in src_to_tgt.items()}
        source_only[name] = _absent(src, tgt, src_to_tgt)
        target_only[name] = _absent(tgt, src, tgt_to_src)
    return Divergence(_missing(source_only), _missing(target_only))


def describe(holder: Backend, other: Backend, missing: Missing) -> str:
    """'PostgreSQL holds 12 changes not in the SQLite file (newest 2026-…)'."""
    newest = f" (newest {missing.newest.isoformat(timespec='seconds')})" if missing.newest else ""
    return (
        f"{BACKEND_NAMES[holder]} holds {missing.total} change(s) not in "
        f"{BACKEND_NAMES[other]}{newest}"
    )
