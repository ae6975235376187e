"""Time to move the data when `postgresql_support` switches the primary database, each way.

    python bench/bench_switch.py [--quick] [--runs 3] [--events 10000] [--runs-aws 1000]

Builds a PCM-Ops Tools SQLite database (init_db, then --events audit events chained with the
data directory's audit key, in bulk as an emergency rollback writes them, and --runs-aws AWS
tool runs with a 20-row result table each), then times, per round and in shuffled order:

* ours, SQLite → PostgreSQL: `backend.db.transfer.copy_database` into a fresh scratch database
  (schema by the Alembic migrations, batched inserts, sequences, row counts and the audit
  chain verified inside the one transaction, commit);
* ours, PostgreSQL → SQLite: `copy_database` onto a SQLite file holding only what `db init`
  seeds (new file, migrations, inserts, verification, backup of the old file, atomic swap);
* naive peer, each way: the same rows copied by one INSERT per row through SQLAlchemy Core, in
  one transaction, onto a migrated target, without any verification: what a first version
  would do, and the ratio shows what batching buys.

Reported: median seconds per way over --runs rounds and the naive/ours ratio. The reference
machine is shared (see bench/README.md): the ratio is the figure that carries over.
"""

from __future__ import annotations

import argparse
import random
import shutil
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from _common import code_note, machine_note, median, print_table, say
from sqlalchemy import insert, select

from backend.aws.models import ToolRun
from backend.core.config import Settings
from backend.db.init_db import init_db, upgrade_schema
from backend.db.session import make_engine, session_factory
from backend.db.tables import app_tables
from backend.db.transfer import copy_database
from backend.flags.audit import append_changes, next_event_id
from backend.flags.service import lock_store
from backend.security.audit_keys import anchor_sessions

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
PG_BASE = "postgresql+psycopg://postgres@127.0.0.1:5432"
FLAGS = ("csrf_tokens_enabled", "xss_protection_enabled", "thread_safe_sessions")


class Change:
    def __init__(self, name: str, old: bool, new: bool) -> None:
        self.name, self.old, self.new = name, old, new


def new_pg_database(made: list[str]) -> str:
    name = f"bench_switch_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    made.append(name)
    return f"{PG_BASE}/{name}"


def drop_pg_databases(made: list[str]) -> None:
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        for name in made:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def build_source(settings: Settings, events: int, runs: int) -> None:
    """init_db, then `events` keyed audit events (1000 per transaction) and `runs` AWS runs."""
    init_db(settings)
    engine = make_engine(settings.sqlite_url)
    sessions = session_factory(engine)
    anchor_sessions(sessions, settings)
    now = datetime.now(UTC)
    for start in range(0, events, 1000):
        with sessions.begin() as db:
            store = lock_store(db)
            changes = [
                Change(FLAGS[n % len(FLAGS)], n % 2 == 1, n % 2 == 0)
                for n in range(start, min(start + 1000, events))
            ]
            append_changes(
                db,
                store,
                changes,
                at=now,
                actor="bench",
                method="emergency",
                reason="bench_switch",
                rollback_record_id=None,
                next_id=next_event_id(db),
            )
    table_rows = [{"id": f"i-{n:08x}", "cpu": n / 7, "tags": {"team": "ops"}} for n in range(20)]
    with sessions.begin() as db:
        db.add_all(
            ToolRun(
                actor="bench",
                tool="ec2_instances",
                provider_name="prod",
                regions=["eu-west-1"],
                params={"n": n},
                duration_ms=1.5,
                outcome="ok",
                row_count=len(table_rows),
                errors=[],
                columns=["id", "cpu", "tags"],
                rows=table_rows,
            )
            for n in range(runs)
        )
    engine.dispose()


def naive_copy(source_url: str, target_url: str) -> None:
    """One INSERT per row, one transaction, no verification: the peer."""
    source, target = make_engine(source_url), make_engine(target_url)
    try:
        upgrade_schema(target)
        with source.connect() as src, target.begin() as dst:
            for table in app_tables():
                dst.execute(table.delete())
            for table in app_tables():
                for row in src.execute(select(table)):
                    dst.execute(insert(table), dict(row._mapping))
    finally:
        source.dispose()
        target.dispose()


def seeded_file(template: Path, settings: Settings) -> None:
    """The target SQLite file: what `db init` seeds, as a switch back finds the old file."""
    for side in ("", "-wal", "-shm"):
        Path(f"{settings.sqlite_path}{side}").unlink(missing_ok=True)
    shutil.copyfile(template, settings.sqlite_path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1 round, 2000 events, 200 runs")
    parser.add_argument("--runs", type=int, default=3, help="rounds (median reported)")
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--runs-aws", type=int, default=1000)
    args = parser.parse_args()
    if args.quick:
        args.runs, args.events, args.runs_aws = 1, 2000, 200
    say(machine_note())
    say(code_note())
    root = Path(tempfile.mkdtemp(prefix="bench_switch_"))
    made: list[str] = []
    try:
        run(root, made, args)
    finally:
        drop_pg_databases(made)
        shutil.rmtree(root, ignore_errors=True)


def run(root: Path, made: list[str], args: Any) -> None:
    source = Settings(data_dir=root / "source", log_dir=root / "logs")
    build_source(source, args.events, args.runs_aws)
    seed = Settings(data_dir=root / "seed", log_dir=root / "logs")
    init_db(seed)
    pg_full = new_pg_database(made)
    copy_database(source, source_url=source.sqlite_url, target_url=pg_full)
    back = Settings(data_dir=root / "source", log_dir=root / "logs")  # same keys as the source
    target_file = root / "back" / "pcm_ops_tools.db"
    target_file.parent.mkdir()
    target_url = f"sqlite:///{target_file}"
    times: dict[str, list[float]] = {}

    def timed(label: str, fn: Any) -> None:
        started = time.perf_counter()
        fn()
        times.setdefault(label, []).append(time.perf_counter() - started)

    def ours_to_pg() -> None:
        target = new_pg_database(made)
        timed(
            "ours SQLite → PostgreSQL",
            lambda: copy_database(source, source_url=source.sqlite_url, target_url=target),
        )

    def naive_to_pg() -> None:
        target = new_pg_database(made)
        timed("naive SQLite → PostgreSQL", lambda: naive_copy(source.sqlite_url, target))

    def ours_to_sqlite() -> None:
        seeded_file(seed.sqlite_path, Settings(data_dir=target_file.parent, log_dir=root))
        timed(
            "ours PostgreSQL → SQLite",
            lambda: copy_database(back, source_url=pg_full, target_url=target_url),
        )

    def naive_to_sqlite() -> None:
        seeded_file(seed.sqlite_path, Settings(data_dir=target_file.parent, log_dir=root))
        timed("naive PostgreSQL → SQLite", lambda: naive_copy(pg_full, target_url))

    rounds = [ours_to_pg, naive_to_pg, ours_to_sqlite, naive_to_sqlite]
    for n in range(args.runs):
        random.shuffle(rounds)
        for step in rounds:
            step()
        say(f"round {n + 1}/{args.runs} done")
    rows = []
    for way in ("SQLite → PostgreSQL", "PostgreSQL → SQLite"):
        ours, naive = median(times[f"ours {way}"]), median(times[f"naive {way}"])
        rows.append((way, f"{ours:.2f}", f"{naive:.2f}", f"{naive / ours:.1f}x"))
    print_table(
        f"{args.events} audit events + {args.runs_aws} AWS runs, median of {args.runs}",
        ("way", "ours s", "naive s", "naive / ours"),
        rows,
    )
    say(machine_note())


if __name__ == "__main__":
    main()
