"""Rollbacks while the database is down: journaled, served, replayed once when it returns.

The outage is real: the SQLite file lives in a directory that is renamed away (SQLite cannot
open a file whose directory is gone; root ignores chmod); a PostgreSQL database refuses
connections and loses its sessions (the shared server keeps running). The engine keeps no
pooled connection that would survive the outage.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, make_url, select
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool

from backend.core.config import Settings
from backend.db.init_db import InitReport
from backend.db.session import make_engine, session_factory
from backend.flags import (
    DEFAULT_FLAGS,
    FlagNotFound,
    FlagRuntime,
    FlagStoreUnavailable,
    RollbackModeActive,
    current,
    is_enabled,
    last_known,
    service,
    snapshot,
)
from backend.flags import journal as journal_mod
from backend.flags.audit import verify_chain
from backend.flags.models import AuditEvent, FlagRow, RollbackRecord
from tests.postgres import accept_connections, refuse_connections

CSRF = "csrf_tokens_enabled"
XSS = "xss_protection_enabled"
DEFAULTS = {d.name: d.default for d in DEFAULT_FLAGS}
ROLLBACK_VALUES = {d.name: d.rollback_value for d in DEFAULT_FLAGS}
MakeRuntime = Callable[..., FlagRuntime]
SUFFIX = "journaled while the database was down at"


class Database:
    """A SQLite flag store whose directory can be taken away and brought back."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.away = directory.with_name(directory.name + "-away")
        self.url = f"sqlite:///{directory}/pcm_ops_tools.db"
        self.engine = make_engine(self.url, poolclass=NullPool)
        self.sessions = session_factory(self.engine)

    def down(self) -> None:
        self.directory.rename(self.away)

    def up(self) -> None:
        self.away.rename(self.directory)

    def close(self) -> None:
        if self.away.exists():
            self.up()
        self.engine.dispose()


class PostgresDatabase(Database):
    """A PostgreSQL flag store that refuses connections and comes back."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.name = make_url(url).database or ""
        self.engine = make_engine(url, poolclass=NullPool)
        self.sessions = session_factory(self.engine)

    def down(self) -> None:
        refuse_connections(self.name)

    def up(self) -> None:
        accept_connections(self.name)

    def close(self) -> None:
        self.up()
        self.engine.dispose()


@pytest.fixture
def db(settings: Settings, initialized: InitReport, tmp_path: Path) -> Iterator[Database]:
    if settings.database_url is not None:
        database: Database = PostgresDatabase(settings.database_url)
    else:
        directory = tmp_path / "db"
        directory.mkdir()
        for f in settings.data_dir.glob("pcm_ops_tools.db*"):
            shutil.copy(f, directory / f.name)
        database = Database(directory)
    yield database
    database.close()


@pytest.fixture
def rt(make_runtime: MakeRuntime, db: Database) -> FlagRuntime:
    """A runtime that read the store once (so the last-known state file exists)."""
    runtime = make_runtime(sessions=db.sessions, poll_interval=0.01)
    runtime.refresh(force=True)
    return runtime


def effective() -> dict[str, bool]:
    return {n: f.enabled for n, f in current().flags.items()}


def stored(sessions: sessionmaker[Session]) -> dict[str, bool]:
    with sessions() as s:
        return {r.name: r.enabled for r in s.scalars(select(FlagRow))}


def count(sessions: sessionmaker[Session], model: type[AuditEvent] | type[RollbackRecord]) -> int:
    with sessions() as s:
        return s.scalar(select(func.count()).select_from(model)) or 0


def archived(settings: Settings) -> list[Path]:
    return sorted(settings.data_dir.glob("rollback_journal.applied-*.jsonl"))


def wait_for(condition: Callable[[], bool], timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"condition not met within {timeout} s"
        time.sleep(0.002)


# -- journaling ---------------------------------------------------------------------------
def test_the_journal_lives_beside_the_state_file(settings: Settings, rt: FlagRuntime) -> None:
    assert settings.rollback_journal_file == settings.data_dir / "rollback_journal.jsonl"
    assert rt.journal_file == settings.rollback_journal_file


def test_an_emergency_rollback_while_down_is_journaled_and_served(
    rt: FlagRuntime, db: Database, settings: Settings
) -> None:
    db.down()
    result = rt.rollback(None, actor="token:admin", method="emergency", reason="5xx spike")

    assert (result.verification, result.record_id) == ("journaled", None)
    assert result.journal_id is not None
    on = sorted(n for n, v in DEFAULTS.items() if v != ROLLBACK_VALUES[n])
    assert [c["flag"] for c in result.changed] == on
    assert effective() == ROLLBACK_VALUES
    assert current().journaled == (result.journal_id,)
    assert current().from_last_known_state is True
    assert {current().flags[n].source for n in on} == {"journal"}
    assert current().flags[on[0]].updated_by == "token:admin"

    path = settings.rollback_journal_file
    assert path.stat().st_mode & 0o777 == 0o600
    (line,) = path.read_text().splitlines()
    entry = json.loads(line)
    assert {k: entry[k] for k in ("id", "actor", "method", "reason", "names")} == {
        "id": result.journal_id,
        "actor": "token:admin",
        "method": "emergency",
        "reason": "5xx spike",
        "names": "ALL",
    }
    health = rt.health()
    assert health["status"] == "unhealthy"
    assert health["journaled_rollbacks"] == [result.journal_id]


def test_a_flag_rollback_and_a_disabling_toggle_are_journaled(
    rt: FlagRuntime, db: Database, settings: Settings
) -> None:
    db.down()
    r = rt.rollback([CSRF], actor="a", method="feature_flag", reason="")
    t = rt.toggle(XSS, False, actor="b", method="api", reason="UI broken")
    assert r.changed == [{"flag": CSRF, "from": True, "to": False}]
    assert (t.old, t.new, t.journal_id is not None) == (True, False, True)
    assert is_enabled(CSRF) is False and is_enabled(XSS) is False
    assert len(journal_mod.read(settings.rollback_journal_file)) == 2


def test_enabling_while_down_is_refused(rt: FlagRuntime, db: Database, settings: Settings) -> None:
    rt.toggle(CSRF, False, actor="a", method="api")
    db.down()
    with pytest.raises(FlagStoreUnavailable, match="cannot enable 'csrf_tokens_enabled'"):
        rt.toggle(CSRF, True, actor="a", method="api")
    assert is_enabled(CSRF) is False
    assert not settings.rollback_journal_file.exists()


def test_enabling_while_down_in_rollback_mode_is_a_rollback_mode_refusal(
    make_runtime: MakeRuntime, rt: FlagRuntime, db: Database
) -> None:
    strict = make_runtime(sessions=db.sessions, rollback_mode=True)
    db.down()
    with pytest.raises(RollbackModeActive):
        strict.toggle(CSRF, True, actor="a", method="api")


def test_unknown_flags_while_down_journal_nothing(
    rt: FlagRuntime, db: Database, settings: Settings
) -> None:
    db.down()
    with pytest.raises(FlagNotFound):
        rt.rollback(["no_such_flag"], actor="a", method="feature_flag")
    with pytest.raises(FlagNotFound):
        rt.toggle("no_such_flag", False, actor="a", method="api")
    assert not settings.rollback_journal_file.exists()


def test_without_a_state_file_a_rollback_while_down_is_refused(
    make_runtime: MakeRuntime, db: Database
) -> None:
    bare = make_runtime(sessions=db.sessions, state_file=None)
    bare.refresh(force=True)
    db.down()
    with pytest.raises(FlagStoreUnavailable, match="could not store"):
        bare.rollback(None, actor="a", method="emergency")


def test_a_process_started_during_the_outage_serves_the_journal(
    rt: FlagRuntime, make_runtime: MakeRuntime, db: Database
) -> None:
    db.down()
    rt.rollback([CSRF], actor="a", method="feature_flag")
    snapshot.reset()  # a fresh process
    fresh = make_runtime(sessions=db.sessions)
    with pytest.raises(FlagStoreUnavailable, match="unreachable"):
        fresh.refresh(force=True)
    assert is_enabled(CSRF) is False
    assert current().flags[CSRF].source == "journal"


# -- replay -------------------------------------------------------------------------------
def test_the_store_coming_back_replays_the_journal_once(
    rt: FlagRuntime, db: Database, settings: Settings
) -> None:
    records, events = count(db.sessions, RollbackRecord), count(db.sessions, AuditEvent)
    db.down()
    result = rt.rollback(None, actor="token:admin", method="emergency", reason="5xx spike")
    db.up()

    rt.refresh()
    assert stored(db.sessions) == ROLLBACK_VALUES
    assert effective() == ROLLBACK_VALUES
    assert current().journaled == () and current().from_last_known_state is False
    assert not settings.rollback_journal_file.exists()
    assert len(archived(settings)) == 1
    assert count(db.sessions, RollbackRecord) == records + 1
    assert count(db.sessions, AuditEvent) == events + len(result.changed)
    with db.sessions() as s:
        record = s.scalars(select(RollbackRecord).order_by(RollbackRecord.id.desc())).first()
        assert record is not None
        assert (record.method, record.actor, record.feature) == ("emergency", "token:admin", "ALL")
        assert record.trigger.startswith(f"5xx spike ({SUFFIX} ")
        assert str(result.journal_id) in record.trigger
        assert record.verification == "success"
        reasons = {e.reason for e in s.scalars(select(AuditEvent).where(AuditEvent.id > events))}
        assert reasons == {record.trigger}
        assert verify_chain(s).ok
    assert rt.health()["journaled_rollbacks"] == []
    assert rt.health()["status"] == "healthy"


def test_a_replay_after_a_crash_before_the_rename_applies_nothing_twice(
    rt: FlagRuntime, db: Database, settings: Settings
) -> None:
    db.down()
    rt.rollback([CSRF], actor="a", method="feature_flag", reason="r")
    rt.toggle(XSS, False, actor="b", method="api", reason="t")
    kept = settings.rollback_journal_file.read_text()
    db.up()
    assert len(rt.replay_journal(force=True)) == 2
    records, events = count(db.sessions, RollbackRecord), count(db.sessions, AuditEvent)

    # The crash: the commit happened, the rename did not (the journal is still there).
    settings.rollback_journal_file.write_text(kept)
    assert rt.replay_journal(force=True) == []
    assert (count(db.sessions, RollbackRecord), count(db.sessions, AuditEvent)) == (
        records,
        events,
    )
    assert not settings.rollback_journal_file.exists()
    assert len(archived(settings)) == 2
    with db.sessions() as s:
        assert verify_chain(s).ok


def test_a_change_after_the_outage_lands_after_the_journaled_ones(
    rt: FlagRuntime, db: Database, settings: Settings
) -> None:
    db.down()
    rt.rollback([CSRF], actor="a", method="feature_flag")
    db.up()
    rt.toggle(CSRF, True, actor="b", method="api", reason="fixed")  # replays first
    assert is_enabled(CSRF) is True
    with db.sessions() as s:
        last_two = list(s.scalars(select(AuditEvent).order_by(AuditEvent.id.desc()).limit(2)))
    assert [(e.new_value, e.actor) for e in reversed(last_two)] == [(False, "a"), (True, "b")]
    assert not settings.rollback_journal_file.exists()


def test_the_poller_replays_when_the_store_returns(rt: FlagRuntime, db: Database) -> None:
    rt.start_polling()
    db.down()
    rt.rollback([CSRF], actor="a", method="feature_flag")
    db.up()
    wait_for(lambda: current().journaled == () and not current().from_last_known_state)
    assert stored(db.sessions)[CSRF] is False


# -- another process ----------------------------------------------------------------------
OTHER_WORKER = """
import sys, time
from pathlib import Path
from sqlalchemy.pool import NullPool
from backend.db.session import make_engine, session_factory
from backend.flags import FlagRuntime, FlagStoreUnavailable
engine = make_engine(sys.argv[1], poolclass=NullPool)
rt = FlagRuntime(session_factory(engine), state_file=Path(sys.argv[2]))
try:
    rt.refresh(force=True)
except FlagStoreUnavailable:
    pass  # serving the last-known state, as a worker started during the outage does
result = rt.rollback(["csrf_tokens_enabled"], actor="worker-a", method="feature_flag")
print(result.verification, time.time())
"""


def test_a_rollback_journaled_by_another_process_is_served_here_within_100_ms(
    rt: FlagRuntime, db: Database, settings: Settings
) -> None:
    rt.start_polling()
    db.down()
    time.sleep(0.1)  # the poller has noticed the outage
    seen: list[float] = []

    def watch() -> None:
        deadline = time.monotonic() + 60
        while is_enabled(CSRF) and time.monotonic() < deadline:
            time.sleep(0.001)
        seen.append(time.time())

    watcher = threading.Thread(target=watch)
    watcher.start()
    done = subprocess.run(
        [sys.executable, "-c", OTHER_WORKER, db.url, str(settings.state_file)],
        check=True,
        timeout=60,
        capture_output=True,
        text=True,
    )
    watcher.join()
    verification, journaled_at = done.stdout.split()
    assert verification == "journaled"
    assert is_enabled(CSRF) is False
    assert current().flags[CSRF].updated_by == "worker-a"
    assert seen[0] - float(journaled_at) < 0.1


# -- replay order: a later acknowledged change wins ---------------------------------------
def change_elsewhere(db: Database, name: str, enabled: bool, actor: str) -> int:
    """A change another process stores without replaying this journal (acknowledged now).
    Setting the value a flag has is no change (and records nothing), so a flag that has
    `enabled` already is first set the other way."""
    with db.sessions.begin() as s:
        if stored(db.sessions)[name] == enabled:
            service.set_flag(s, name=name, enabled=not enabled, actor=actor, method="api")
        return service.set_flag(s, name=name, enabled=enabled, actor=actor, method="api").version


def last_record(db: Database) -> RollbackRecord:
    with db.sessions() as s:
        record = s.scalars(select(RollbackRecord).order_by(RollbackRecord.id.desc())).first()
        assert record is not None
        return record


def test_replay__an_enable_acknowledged_after_the_journaled_disable__is_not_overwritten(
    rt: FlagRuntime, db: Database, settings: Settings
) -> None:
    # Given a disable journaled at t while the store was unreachable
    db.down()
    journaled = rt.toggle(CSRF, False, actor="a", method="api", reason="5xx")
    assert journaled.journal_id is not None
    # and, the store back, an enable stored (by another worker) after t
    db.up()
    version = change_elsewhere(db, CSRF, True, actor="b")

    # When the journal is replayed
    assert rt.replay_journal(force=True) == [journaled.journal_id]

    # Then the later enable stands, and the entry's record says why it was not applied
    assert stored(db.sessions)[CSRF] is True
    rt.refresh()
    assert is_enabled(CSRF) is True
    record = last_record(db)
    assert (record.feature, record.method, record.actor) == (CSRF, "api", "a")
    assert record.changes == []
    assert f"not applied to {CSRF} superseded by version {version} (b at " in record.trigger
    assert str(journaled.journal_id) in record.trigger
    with db.sessions() as s:
        assert verify_chain(s).ok


def test_replay__an_emergency_rollback_superseded_for_one_flag__applies_to_the_others(
    rt: FlagRuntime, db: Database
) -> None:
    db.down()
    journaled = rt.rollback(None, actor="a", method="emergency", reason="5xx")
    db.up()
    change_elsewhere(db, XSS, True, actor="b")  # re-enabled after the emergency

    rt.replay_journal(force=True)

    now = stored(db.sessions)
    assert now[XSS] is True
    assert {n: v for n, v in now.items() if n != XSS} == {
        n: v for n, v in ROLLBACK_VALUES.items() if n != XSS
    }
    record = last_record(db)
    assert (record.feature, record.verification) == ("ALL", "success")
    assert XSS not in {c["flag"] for c in record.changes}
    assert CSRF in {c["flag"] for c in record.changes}
    assert f"not applied to {XSS} superseded by version" in record.trigger
    assert str(journaled.journal_id) in record.trigger


def test_replay__a_change_acknowledged_before_the_entry__is_rolled_back(
    rt: FlagRuntime, db: Database
) -> None:
    # An enable stored before the outage is what the rollback is for: not a supersession.
    change_elsewhere(db, CSRF, True, actor="b")
    rt.refresh()
    db.down()
    rt.rollback([CSRF], actor="a", method="feature_flag")
    db.up()
    rt.replay_journal(force=True)
    assert stored(db.sessions)[CSRF] is False
    assert "not applied" not in last_record(db).trigger


def test_served_state__a_change_stored_after_a_pending_entry__is_served_not_the_entry(
    rt: FlagRuntime, db: Database
) -> None:
    # While a journal waits for its replay, the flag a later change made is served as stored.
    db.down()
    rt.toggle(CSRF, False, actor="a", method="api")
    db.up()
    change_elsewhere(db, CSRF, True, actor="b")
    entries = journal_mod.read(rt.journal_file)
    with db.sessions() as s:
        version, rows = last_known.read_since(s, -1)
    assert version is not None
    served = rt.builder.build(version, rows, entries)
    assert (served.flags[CSRF].enabled, served.flags[CSRF].source) == (True, "stored")
    assert served.flags[XSS].source == "stored"


# -- every replayed entry leaves a rollback record ------------------------------------------
def test_replay__a_journaled_toggle__leaves_a_rollback_record_with_its_audit_event(
    rt: FlagRuntime, db: Database
) -> None:
    records = count(db.sessions, RollbackRecord)
    db.down()
    entries = [
        rt.toggle(XSS, False, actor="b", method="api", reason="UI broken").journal_id,
        rt.rollback([CSRF], actor="a", method="feature_flag").journal_id,
        rt.toggle(CSRF, False, actor="c", method="api").journal_id,  # already off by then
    ]
    db.up()
    assert rt.replay_journal(force=True) == entries

    assert count(db.sessions, RollbackRecord) == records + 3
    with db.sessions() as s:
        made = list(s.scalars(select(RollbackRecord).order_by(RollbackRecord.id)))[-3:]
        toggle_record = made[0]
        assert (toggle_record.feature, toggle_record.method, toggle_record.actor) == (
            XSS,
            "api",
            "b",
        )
        assert toggle_record.trigger.startswith(f"UI broken ({SUFFIX} ")
        assert toggle_record.changes == [{"flag": XSS, "from": True, "to": False}]
        assert toggle_record.verification == "success"
        (event,) = s.scalars(
            select(AuditEvent).where(AuditEvent.rollback_record_id == toggle_record.id)
        )
        assert (event.flag_name, event.new_value, event.actor) == (XSS, False, "b")
        assert made[2].changes == []  # nothing left to change, still on record
        assert str(entries[2]) in made[2].trigger
        assert verify_chain(s).ok


def test_journaling__a_state_file_behind_the_served_store__is_brought_up_first(
    rt: FlagRuntime, db: Database, settings: Settings
) -> None:
    # Given a state file one version behind what this process serves (the poller's save delay)
    served = current()
    older = [
        r._replace(enabled=False) if r.name == CSRF else r for r in last_known.records_of(served)
    ]
    last_known.save(settings.state_file, served.version - 1, older)
    assert served.flags[CSRF].stored_enabled is True

    # When the store becomes unreachable and an emergency rollback is journaled
    db.down()
    result = rt.rollback(None, actor="a", method="emergency")

    # Then it was worked out on, and laid over, the freshest state this process knew
    assert result.last_known_version == served.version
    assert last_known.saved_version(settings.state_file) == served.version
    assert CSRF in {c["flag"] for c in result.changed}
    assert current().version == served.version
    assert f"last-known state version {served.version}" in str(result.note)


def test_replay__entries_that_find_every_flag_at_its_rollback_value__leave_records_only(
    rt: FlagRuntime, db: Database
) -> None:
    # Given every flag at its rollback value in the store, then an emergency rollback and a
    # flag rollback journaled during an outage
    rt.rollback(None, actor="a", method="emergency")
    events = count(db.sessions, AuditEvent)
    with db.sessions() as s:
        version = service.store_version(s)
    db.down()
    emergency = rt.rollback(None, actor="a", method="emergency", reason="5xx")
    one = rt.rollback([CSRF], actor="a", method="feature_flag")
    assert emergency.nothing_changed and one.nothing_changed  # on the last-known state
    # When the store is back and the journal replayed
    db.up()
    assert rt.replay_journal(force=True) == [emergency.journal_id, one.journal_id]
    # Then each entry has a record saying nothing needed changing (it carries the entry's id)
    # and no flag got an event or a new version
    with db.sessions() as s:
        records = s.scalars(select(RollbackRecord).order_by(RollbackRecord.id.desc())).all()
        assert service.store_version(s) == version
    assert [(r.feature, r.changes) for r in records[:2]] == [(CSRF, []), ("ALL", [])]
    assert str(one.journal_id) in records[0].trigger
    assert count(db.sessions, AuditEvent) == events
