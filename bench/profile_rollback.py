"""Where the time of an emergency rollback goes, in-process (no HTTP), for 9 and 1,000 flags.

    python bench/profile_rollback.py [--quick] [--flags 9,1000] [--repeat N]

A diagnostic companion of bench_rollback.py: it runs the public pieces of the rollback path on a
temporary SQLite store (WAL, synchronous=FULL, as the server does) and reports the median wall
time of each, then the cProfile share of the main functions inside service.rollback_flags. Every
repetition starts from the same state: all flags that were on after set-up are on again and the
runtime has a fresh snapshot.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import code_note, machine_note, median, percentile, print_table, say
from sqlalchemy import select, update

from backend.core.config import Settings
from backend.core.log import configure_logging
from backend.db.base import utcnow
from backend.db.init_db import init_db
from backend.db.session import engine_for, session_factory
from backend.flags import FlagRuntime, last_known, outcomes, service, snapshot
from backend.flags.models import FlagRow
from backend.flags.registry import FlagDefinition, Risk
from backend.flags.service import create_flag, lock_store


class Rig:
    def __init__(self, root: Path, total: int) -> None:
        self.settings = Settings(data_dir=root, log_dir=root, database_url=None)
        init_db(self.settings)
        configure_logging(self.settings.log_file, "INFO")
        self.engine = engine_for(self.settings)
        self.sessions = session_factory(self.engine)
        with self.sessions.begin() as s:
            existing = len(list(s.scalars(select(FlagRow.name))))
            for i in range(total - existing):
                create_flag(
                    s,
                    FlagDefinition(f"bench_flag_{i:04d}", "benchmark flag", 3, Risk.LOW, True),
                    actor="bench",
                )
        with self.sessions() as s:
            self.enabled = [r.name for r in s.scalars(select(FlagRow)) if r.enabled]
        self.runtime = FlagRuntime(self.sessions, state_file=self.settings.state_file)
        self.runtime.refresh(force=True)

    def reset(self) -> None:
        with self.sessions.begin() as s:
            version = lock_store(s).version
            s.execute(
                update(FlagRow)
                .where(FlagRow.name.in_(self.enabled))
                .values(enabled=True, updated_at=utcnow(), version=version)
            )
        self.runtime.refresh(force=True)


def timed(rig: Rig, fn: Callable[[], object], repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        rig.reset()
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1000)
    return out


def pieces(rig: Rig) -> list[tuple[str, Callable[[], object]]]:
    n_changed = len(rig.enabled)

    def service_commit() -> None:
        with rig.sessions.begin() as s:
            service.rollback_flags(s, names=None, actor="bench", method="emergency")

    def service_no_commit() -> None:
        s = rig.sessions()
        s.begin()
        try:
            service.rollback_flags(s, names=None, actor="bench", method="emergency")
        finally:
            s.rollback()
            s.close()

    def load_rows() -> None:
        with rig.sessions() as s:
            last_known.read_since(s, -1)[1]

    with rig.sessions() as s:
        rows = last_known.read_since(s, -1)[1]
    state_file = rig.runtime.state_file or Path(tempfile.mkdtemp()) / "state.json"

    def log_lines() -> None:
        outcomes.log_changes(
            [(f"f{i:04d}", True, False) for i in range(n_changed)],
            " by bench via emergency (version 1, emergency rollback record 1)",
        )

    def publish_own() -> None:
        base = snapshot.current()
        rig.runtime.builder.extend(
            base, base.version + 1, [r._replace(enabled=False) for r in rows if r.enabled]
        )

    return [
        (
            "runtime.rollback(None) - the whole use case",
            lambda: rig.runtime.rollback(None, actor="bench", method="emergency"),
        ),
        ("  service.rollback_flags + commit", service_commit),
        ("  service.rollback_flags, rolled back", service_no_commit),
        (f"  {n_changed} 'Feature flag ... changed' lines, one log record", log_lines),
        (f"  publish own change: snapshot with {n_changed} flags rebuilt", publish_own),
        ("runtime.refresh(force=True): a full reload", lambda: rig.runtime.refresh(force=True)),
        ("  one-statement read of every flag", load_rows),
        ("  SnapshotBuilder.build (FlagState objects)", lambda: rig.runtime.builder.build(1, rows)),
        (
            "last_known.save (JSON file; by the poller)",
            lambda: last_known.save(state_file, 1, rows),
        ),
    ]


FOCUS = (
    ("service.py", "lock_store"),
    ("session.py", "flush"),
    ("audit.py", "append_changes"),
    ("audit.py", "_insert_many"),
    ("audit.py", "next_event_id"),
    ("decl_base.py", "_declarative_constructor"),
    ("attributes.py", "__set__"),
    ("session.py", "scalars"),
)


def profile_service(rig: Rig) -> list[list[str]]:
    rig.reset()
    prof = cProfile.Profile()
    with rig.sessions.begin() as s:
        prof.enable()
        service.rollback_flags(s, names=None, actor="bench", method="emergency")
        prof.disable()
    stats = pstats.Stats(prof)
    total = max(v[3] for v in stats.stats.values())  # type: ignore[attr-defined]
    rows = []
    for (path, _line, func), (_cc, ncalls, _tt, cum, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        for file_end, name in FOCUS:
            if path.endswith(file_end) and func == name:
                rows.append(
                    [
                        f"{file_end}:{func}",
                        f"{ncalls:,}",
                        f"{cum * 1000:,.1f}",
                        f"{100 * cum / total:.0f}%",
                    ]
                )
    rows.sort(key=lambda r: -float(r[2].replace(",", "")))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="5 repetitions")
    parser.add_argument("--repeat", type=int, help="repetitions per piece (default 15)")
    parser.add_argument("--flags", default="9,1000")
    args = parser.parse_args(argv)
    repeat = args.repeat or (5 if args.quick else 15)
    say(f"profile_rollback: {repeat} repetitions per piece")
    say(f"machine: {machine_note()}")
    say(f"code: {code_note()}")
    for total in (int(x) for x in args.flags.split(",")):
        with tempfile.TemporaryDirectory(prefix="pcm-profile-") as tmp:
            rig = Rig(Path(tmp), total)
            try:
                rows = []
                for label, fn in pieces(rig):
                    values = timed(rig, fn, repeat)
                    rows.append(
                        [
                            label,
                            f"{median(values):,.1f}",
                            f"{percentile(values, 95):,.1f}",
                            f"{min(values):,.1f}",
                        ]
                    )
                print_table(
                    f"{total} flags ({len(rig.enabled)} changed by a rollback): wall ms",
                    ["piece", "median", "p95", "min"],
                    rows,
                )
                print_table(
                    f"{total} flags: cProfile of one service.rollback_flags "
                    "(profiling inflates ORM-heavy code; read the shares)",
                    ["function", "calls", "cumulative ms", "share"],
                    profile_service(rig),
                )
            finally:
                rig.engine.dispose()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
