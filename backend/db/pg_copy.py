"""The PostgreSQL side of a copy (backend.db.transfer): one transaction from the decision to
the commit. The app tables are locked against writers, emptied, filled by COPY, their
sequences set past the copied ids, and the row counts and the audit chain verified inside the
transaction: a failed check or a kill halfway leaves PostgreSQL as it was."""

from __future__ import annotations

from sqlalchemy import func, select, text
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from backend.db.copy_job import (
    CopyReport,
    Job,
    check_chain,
    check_counts,
    decide,
    insert_rows,
    target_counts,
)
from backend.db.init_db import upgrade_schema
from backend.db.session import make_engine
from backend.db.tables import app_tables
from backend.flags.models import FlagStoreRow
from backend.flags.notify import CHANNEL


def _reset_sequences(conn: Connection) -> None:
    """Each serial sequence past the ids copied in, so that the next insert gets a new id."""
    for table in app_tables():
        pk = list(table.primary_key.columns)
        if len(pk) != 1 or pk[0].name != "id" or pk[0].autoincrement is not True:
            continue
        top = conn.execute(select(func.max(pk[0]))).scalar_one()
        conn.execute(
            text("SELECT setval(pg_get_serial_sequence(:t, 'id'), :v, :called)"),
            {"t": table.name, "v": top or 1, "called": top is not None},
        )


def copy_to_postgres(job: Job) -> CopyReport:
    """Replace PostgreSQL's rows by the source's, unless the decision says otherwise."""
    engine = make_engine(job.target_url, busy_timeout=job.settings.database_busy_timeout)
    names = ", ".join(t.name for t in app_tables())
    try:
        if not job.dry_run:
            upgrade_schema(engine)
        with engine.connect() as conn, conn.begin() as tx:
            if not job.dry_run:
                # Writers wait (readers do not) from the decision to the commit.
                conn.execute(text(f"LOCK TABLE {names} IN EXCLUSIVE MODE"))
            mode = decide(job, conn)
            if mode != "copied" or job.dry_run:
                counts = target_counts(conn)
                tx.rollback()
                return job.report(mode, counts, events=0, verified=False)
            conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
            insert_rows(conn, job)
            _reset_sequences(conn)
            counts = check_counts(conn, job.snapshot)
            # Read inside the copy's transaction, under savepoints: the sessions of the check
            # end their savepoints, never the copy.
            with (
                conn.begin_nested(),
                Session(conn, join_transaction_mode="create_savepoint") as session,
            ):
                events = check_chain(session, job.settings)
            # Instances already on PostgreSQL load the copied flags at once.
            version = conn.execute(select(FlagStoreRow.version)).scalar_one_or_none()
            conn.execute(select(func.pg_notify(CHANNEL, str(version or 0))))
            tx.commit()
    finally:
        engine.dispose()
    return job.report("copied", counts, events=events, verified=True)
