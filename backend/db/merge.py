"""Bring into this database (local, the primary) what was written on the other one (origin)
since the two were last in step: `pcm-ops db sync --from postgresql|sqlite`.

After PostgreSQL went down and `postgresql_support` was rolled back, the app runs on SQLite,
which holds what it had at the last sync; the writes made on PostgreSQL since then come back
here once it answers again. Every table has a rule (a table without one stops the sync):

- append-only tables (rollback records, acknowledgements, tool runs, request metrics, audit
  events): an origin row is already here when local has the same id with the same content, when
  an earlier sync merged it (sync_merged_rows), or when it came from here in the first place
  (the origin's own sync_merged_rows). Any other row is added under a new local id, its foreign
  keys remapped, and recorded in sync_merged_rows, so a second run adds nothing;
- mutable tables, matched by their natural key (RULES below): missing here, the row is added;
  present on both, the rule of its table decides (backend.db.merge_rows);
- a row missing here that is older than the last sync (`since`) was deleted here (a signed-out
  session, a deleted provider, reaped metrics): it is not brought back, nor what needs it;
- flags and the audit chain (backend.db.merge_chain): origin events are re-appended onto the
  local chain in their time order; a flag changed later on the origin takes its value here as
  a change of its own (new store version, audit event with method "sync").

All of it is one local transaction that verifies the audit chain before it commits: a failure
changes nothing, and so does a dry run, which rolls the same work back.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from functools import partial

from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, Table, insert, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from backend.core.primary_file import Backend
from backend.db.init_db import alembic_config
from backend.db.merge_chain import finish_chain, plan_events, plan_flags
from backend.db.merge_rows import (
    Merge,
    OriginUnreachable,
    Row,
    SyncError,
    SyncFailed,
    SyncRefused,
    SyncReport,
    TableSync,
    kept_here,
    merge_appended,
    merge_keyed,
    newer_by,
    token_changes,
    user_changes,
)
from backend.db.outage import first_line
from backend.db.reads import one_snapshot
from backend.db.sync_models import SyncedRow
from backend.db.tables import app_tables
from backend.flags.audit import verify_chain
from backend.flags.audit_anchor import AuditAnchor, anchor_of
from backend.flags.service import lock_store

__all__ = [
    "OriginUnreachable",
    "SyncError",
    "SyncFailed",
    "SyncRefused",
    "SyncReport",
    "TableSync",
    "sync_databases",
]

_MERGED: Table = SyncedRow.__table__  # type: ignore[assignment]


def _not_merged(_merge: Merge, _table: Table) -> None:
    """Derived or bookkeeping: the flag store's version and head follow from the merge, and
    sync_merged_rows describes this database, not the origin."""


Rule = Callable[[Merge, Table], None]
# Every table's rule; a table added to the schema without one stops the sync (see doc).
RULES: dict[str, Rule] = {
    "providers": partial(merge_keyed, key=("name",), changes=kept_here, born="created_at"),
    "users": partial(merge_keyed, key=("username",), changes=user_changes, born="created_at"),
    "api_tokens": partial(
        merge_keyed, key=("token_hash",), changes=token_changes, born="created_at"
    ),
    "login_throttle": partial(
        merge_keyed, key=("key",), changes=newer_by("last_failure_at"), born="last_failure_at"
    ),
    "web_sessions": partial(
        merge_keyed, key=("id_hash",), changes=newer_by("last_seen_at"), born="created_at"
    ),
    "aws_credentials": partial(
        merge_keyed, key=("owner", "provider_id"), changes=newer_by("updated_at"), born="created_at"
    ),
    "feature_flags": plan_flags,
    "rollback_records": merge_appended,
    "rollback_acknowledgements": partial(merge_appended, unique=("record_id",)),
    "aws_tool_runs": merge_appended,
    "request_metrics": partial(merge_appended, unique=("minute", "pid"), born="minute"),
    "flag_audit_events": plan_events,
    "flag_store": _not_merged,
    "sync_merged_rows": _not_merged,
}


def sync_databases(
    local: sessionmaker[Session],
    origin: Engine,
    *,
    local_name: Backend,
    origin_name: Backend,
    actor: str,
    since: datetime | None = None,
    dry_run: bool = False,
) -> SyncReport:
    """Merge the origin's rows into the local database in one transaction (see module doc).

    `local` should be anchored (backend.security.audit_keys.anchor_sessions), so that the
    events appended here are keyed and checkpointed like any other. `since`: a time when
    every origin row was here too (the last copy, or sync from that origin): an origin row
    from before it that is missing here was deleted here, and is not brought back."""
    missing = [t.name for t in app_tables() if t.name not in RULES]
    if missing:
        raise SyncRefused(f"no sync rule for table(s) {', '.join(missing)}")
    with local() as session:
        require_head(session.connection(), local_name)
        session.rollback()  # before the sync's transaction, which starts with the write lock
        rows, from_here = read_origin(origin, origin_name, local_name, anchor_of(session))
        report = SyncReport(origin=origin_name, local=local_name, dry_run=dry_run)
        with _transaction(session, commit=not dry_run):
            lock_store(session, bump=False)  # the write lock first: no busy upgrade later
            merge = Merge(
                session=session,
                origin=origin_name,
                local=local_name,
                rows=rows,
                report=report,
                merged_before=_merged_rows(session, origin_name),
                from_here=from_here,
                since=since,
            )
            for table in app_tables():
                RULES[table.name](merge, table)
            finish_chain(merge, actor=actor)
            if merge.recorded:
                session.execute(insert(_MERGED), merge.recorded)
            chain = verify_chain(session, within=True)
            report.chain_verified, report.chain_events = chain.ok, chain.events
            if not chain.ok:
                raise SyncFailed("the audit chain does not verify: " + "; ".join(chain.problems))
    return report


@contextmanager
def _transaction(session: Session, *, commit: bool) -> Iterator[None]:
    """The sync's one transaction: committed, or rolled back on failure or for a dry run."""
    session.begin()
    try:
        yield
    except SQLAlchemyError as exc:
        session.rollback()
        raise SyncFailed(f"the merge failed: {first_line(exc)}") from exc
    except BaseException:
        session.rollback()
        raise
    if commit:
        session.commit()
    else:
        session.rollback()


def require_head(conn: Connection, side: str) -> None:
    """Refuse a database whose schema is not at the code's migration heads."""
    heads = tuple(sorted(ScriptDirectory.from_config(alembic_config()).get_heads()))
    at = tuple(sorted(MigrationContext.configure(conn).get_current_heads()))
    if at != heads:
        raise SyncRefused(
            f"the {side} database's schema is at {', '.join(at) or 'nothing'}, not at "
            f"{', '.join(heads)}: upgrade it first (DATABASE_URL=<its URL> ./pcm-ops db init)"
        )


def read_origin(
    engine: Engine, origin: Backend, local: Backend, anchor: AuditAnchor | None
) -> tuple[dict[str, list[Row]], dict[tuple[str, int], int]]:
    """Every origin row, read in one snapshot whose audit chain verifies (links and hashes:
    the checkpoint file describes the local side), and what the origin got from here."""
    try:
        with Session(engine) as s, one_snapshot(s):
            require_head(s.connection(), origin)
            keys_only = AuditAnchor(anchor.keys, None) if anchor else None
            chain = verify_chain(s, anchor=keys_only, within=True)
            if not chain.ok:
                raise SyncRefused(
                    f"the {origin} database's audit chain does not verify, nothing was merged: "
                    + "; ".join(chain.problems)
                )
            rows = {
                t.name: [dict(r) for r in s.execute(select(t).order_by(*t.primary_key)).mappings()]
                for t in app_tables()
            }
    except SQLAlchemyError as exc:
        raise OriginUnreachable(f"cannot read the {origin} database: {first_line(exc)}") from exc
    from_here = {
        (r["table_name"], r["local_id"]): r["origin_id"]
        for r in rows[_MERGED.name]
        if r["origin"] == local
    }
    return rows, from_here


def _merged_rows(session: Session, origin: Backend) -> dict[tuple[str, int], int]:
    found = session.execute(
        select(_MERGED.c.table_name, _MERGED.c.origin_id, _MERGED.c.local_id).where(
            _MERGED.c.origin == origin
        )
    )
    return {(t, o): loc for t, o, loc in found}
