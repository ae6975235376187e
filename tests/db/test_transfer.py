"""copy_database between a real SQLite file and a real PostgreSQL scratch database: every row
arrives as it was, the audit chain verifies on the target, a target holding changes the source
lacks is never overwritten, and a copy killed halfway changes nothing."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from backend.aws.credentials import key_ring_source, load_credentials
from backend.aws.models import Provider
from backend.core.config import PROJECT_ROOT, Settings
from backend.db import backup
from backend.db.init_db import InitReport, init_db
from backend.db.session import make_engine
from backend.db.transfer import CopyRefused, copy_database
from backend.flags.audit import verify_chain
from backend.flags.audit_anchor import AuditAnchor
from backend.security.audit_keys import audit_anchor
from tests.db.filled import SECRET, anchored, contents, fill, toggle
from tests.postgres import scratch_database


@pytest.fixture
def pg_url() -> Iterator[str]:
    with scratch_database("pcm_copy") as (_name, url):
        yield url


@pytest.fixture
def sqlite_url(settings: Settings, initialized: InitReport) -> str:
    return settings.sqlite_url


def chain_ok(settings: Settings, url: str) -> bool:
    engine = make_engine(url)
    try:
        with Session(engine) as session:
            return verify_chain(session, anchor=audit_anchor(settings)).ok
    finally:
        engine.dispose()


def chain_intact(settings: Settings, url: str) -> bool:
    """The chain's links and keyed hashes hold (the checkpoints of the data directory, which
    may describe the other side's longer chain, left aside)."""
    engine = make_engine(url)
    try:
        with Session(engine) as session:
            anchor = AuditAnchor(audit_anchor(settings).keys, None)
            return verify_chain(session, anchor=anchor).ok
    finally:
        engine.dispose()


def test_copy__sqlite_to_empty_postgresql__every_row_arrives_and_the_chain_verifies(
    settings: Settings, sqlite_url: str, pg_url: str
) -> None:
    # Given a SQLite file with users, tokens, a provider, sealed credentials, flag changes,
    # a rollback record and an AWS run, and an empty PostgreSQL database
    fill(settings, sqlite_url)
    # When it is copied to PostgreSQL
    report = copy_database(settings, source_url=sqlite_url, target_url=pg_url)
    # Then every table holds the same rows with the same values on both sides
    assert report.mode == "copied"
    assert contents(pg_url) == contents(sqlite_url)
    assert all(t.source_rows == t.target_rows for t in report.tables)
    assert report.rows == sum(len(rows) for rows in contents(sqlite_url).values())
    # and the audit chain verifies there with the data directory's keys
    events = len(contents(sqlite_url)["flag_audit_events"])
    assert report.audit_verified and report.audit_events == events > 0
    assert chain_ok(settings, pg_url)
    # and the sealed credentials open on PostgreSQL
    engine, sessions = anchored(settings, pg_url)
    with sessions() as db:
        provider = db.query(Provider).one()
        secret = load_credentials(
            db=db, keys=key_ring_source(settings), owner="alice", provider=provider, session=None
        )
    engine.dispose()
    assert secret == SECRET
    # and the report hides nothing it should not show
    assert report.source == sqlite_url and "postgres@" in report.target


def test_copy__then_writes_on_postgresql__get_new_ids_and_keep_the_chain(
    settings: Settings, sqlite_url: str, pg_url: str
) -> None:
    # Given a database copied to PostgreSQL
    fill(settings, sqlite_url)
    copy_database(settings, source_url=sqlite_url, target_url=pg_url)
    # When a flag changes there
    toggle(settings, pg_url, "csrf_tokens_enabled", True)
    # Then its event follows the copied ones and the chain still verifies
    ids = [e["id"] for e in contents(pg_url)["flag_audit_events"]]
    copied = len(contents(sqlite_url)["flag_audit_events"])
    assert ids == list(range(1, copied + 2))
    assert chain_ok(settings, pg_url)


def test_copy__back_to_sqlite__brings_the_changes_and_keeps_the_old_file_as_a_backup(
    settings: Settings, sqlite_url: str, pg_url: str
) -> None:
    # Given a database that moved to PostgreSQL and changed there
    fill(settings, sqlite_url)
    copy_database(settings, source_url=sqlite_url, target_url=pg_url)
    events = len(contents(sqlite_url)["flag_audit_events"])
    toggle(settings, pg_url, "csrf_tokens_enabled", True)
    # When PostgreSQL is copied back to the SQLite file
    report = copy_database(settings, source_url=pg_url, target_url=sqlite_url)
    # Then the file holds what PostgreSQL holds, and its chain verifies
    assert report.mode == "copied" and report.audit_events == events + 1
    assert contents(sqlite_url) == contents(pg_url)
    assert chain_ok(settings, sqlite_url)
    assert settings.sqlite_path.stat().st_mode & 0o777 == 0o600
    # and the previous file is a listed, restorable backup holding the old state
    assert report.backup is not None and report.backup.exists()
    listed = {item.file: item for item in backup.list_backups(settings)}
    assert listed[report.backup.name].status == "ok"
    backup.check_backup(settings, report.backup)
    with sqlite3.connect(report.backup) as old:
        assert old.execute("SELECT count(*) FROM flag_audit_events").fetchone() == (events,)


def test_copy__sides_already_equal__nothing_written(
    settings: Settings, sqlite_url: str, pg_url: str
) -> None:
    # Given two sides made equal by a copy
    fill(settings, sqlite_url)
    copy_database(settings, source_url=sqlite_url, target_url=pg_url)
    # When the copy runs again, either way
    again = copy_database(settings, source_url=sqlite_url, target_url=pg_url)
    back = copy_database(settings, source_url=pg_url, target_url=sqlite_url)
    # Then nothing is copied and no backup is made
    assert (again.mode, back.mode) == ("nothing", "nothing")
    assert back.backup is None and backup.list_backups(settings) == []


def test_copy__target_holds_more__adopted_without_a_write(
    settings: Settings, sqlite_url: str, pg_url: str
) -> None:
    # Given PostgreSQL holding everything the SQLite file has, and a change more
    fill(settings, sqlite_url)
    copy_database(settings, source_url=sqlite_url, target_url=pg_url)
    toggle(settings, pg_url, "csrf_tokens_enabled", True)
    before = contents(pg_url)
    # When the SQLite file is copied to it
    report = copy_database(settings, source_url=sqlite_url, target_url=pg_url)
    # Then PostgreSQL is adopted as it is: the newer change stays
    assert report.mode == "adopted"
    assert contents(pg_url) == before


def test_copy__seed_only_source_onto_a_used_postgresql__adopted(
    make_settings: object, settings: Settings, sqlite_url: str, pg_url: str, tmp_path: Path
) -> None:
    # Given a PostgreSQL database another instance set up and uses
    other = Settings(data_dir=tmp_path / "other", log_dir=tmp_path / "other_logs")
    init_db(other.model_copy(update={"database_url": pg_url}))
    fill(other, pg_url)
    before = contents(pg_url)
    # When a new instance, whose file holds only what `db init` seeds, copies to it
    report = copy_database(settings, source_url=sqlite_url, target_url=pg_url)
    # Then it joins: PostgreSQL is left as it is
    assert report.mode == "adopted"
    assert contents(pg_url) == before


def test_copy__both_sides_changed__refused_naming_the_sync_and_nothing_changes(
    settings: Settings, sqlite_url: str, pg_url: str
) -> None:
    # Given sides that diverged after a copy: a change on each
    fill(settings, sqlite_url)
    copy_database(settings, source_url=sqlite_url, target_url=pg_url)
    toggle(settings, pg_url, "csrf_tokens_enabled", True)
    toggle(settings, sqlite_url, "xss_protection_enabled", True)
    before = contents(sqlite_url), contents(pg_url)
    # When either side is copied onto the other
    with pytest.raises(CopyRefused) as to_pg:
        copy_database(settings, source_url=sqlite_url, target_url=pg_url)
    with pytest.raises(CopyRefused) as to_sqlite:
        copy_database(settings, source_url=pg_url, target_url=sqlite_url)
    # Then both are refused, saying what the target holds and what to run
    assert str(to_pg.value).startswith("PostgreSQL holds 1 change(s) not in the SQLite file")
    assert "run `pcm-ops db sync --from postgresql` first" in str(to_pg.value)
    assert "run `pcm-ops db sync --from sqlite` first" in str(to_sqlite.value)
    # and neither side changed
    assert (contents(sqlite_url), contents(pg_url)) == before


def test_dry_run__says_what_would_happen__and_changes_nothing(
    settings: Settings, sqlite_url: str, pg_url: str
) -> None:
    # Given a filled SQLite file and an empty PostgreSQL
    fill(settings, sqlite_url)
    # When a dry run copies it
    report = copy_database(settings, source_url=sqlite_url, target_url=pg_url, dry_run=True)
    # Then it would copy, and PostgreSQL still has no schema
    assert report.dry_run and report.mode == "copied"
    assert all(t.target_rows == 0 for t in report.tables)
    engine = make_engine(pg_url)
    with engine.connect() as conn:
        assert (
            conn.exec_driver_sql(
                "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
            ).scalar()
            == 0
        )
    engine.dispose()


def test_copy__broken_audit_chain__refused_and_the_target_unchanged(
    settings: Settings, sqlite_url: str, pg_url: str
) -> None:
    # Given a SQLite file whose audit trail was edited by hand
    fill(settings, sqlite_url)
    with sqlite3.connect(settings.sqlite_path) as conn:
        conn.execute("UPDATE flag_audit_events SET actor = 'mallory' WHERE id = 2")
    # When it is copied to PostgreSQL
    with pytest.raises(CopyRefused, match="audit chain does not verify"):
        copy_database(settings, source_url=sqlite_url, target_url=pg_url)
    # Then PostgreSQL holds none of it
    assert all(rows == [] for rows in contents(pg_url).values())


def test_copy__onto_sqlite_with_an_old_wal__the_old_wal_is_never_applied(
    settings: Settings, sqlite_url: str, pg_url: str
) -> None:
    # Given PostgreSQL holding the data, and a SQLite file with commits still in its -wal
    fill(settings, sqlite_url)
    copy_database(settings, source_url=sqlite_url, target_url=pg_url)
    toggle(settings, pg_url, "csrf_tokens_enabled", True)
    holder = sqlite3.connect(settings.sqlite_path)
    holder.execute("PRAGMA wal_autocheckpoint=0")
    holder.execute("DELETE FROM web_sessions")
    holder.execute("UPDATE providers SET description = 'edited in the old WAL'")
    holder.commit()
    assert Path(f"{settings.sqlite_path}-wal").stat().st_size > 0
    # When PostgreSQL is copied onto the file
    report = copy_database(settings, source_url=pg_url, target_url=sqlite_url)
    holder.close()
    # Then the file holds PostgreSQL's rows, not the old WAL's edit
    assert contents(sqlite_url) == contents(pg_url)
    with sqlite3.connect(settings.sqlite_path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    # and the old WAL's edit is in the backup of the previous file
    assert report.backup is not None
    with sqlite3.connect(report.backup) as old:
        assert old.execute("SELECT description FROM providers").fetchone() == (
            "edited in the old WAL",
        )


def test_copy__source_written_meanwhile__copies_one_snapshot(
    settings: Settings, sqlite_url: str, pg_url: str
) -> None:
    # Given a SQLite file that the server writes while the copy runs
    fill(settings, sqlite_url)
    events = len(contents(sqlite_url)["flag_audit_events"])
    writes: list[str] = []

    def progress(table: str, done: int, total: int) -> None:
        if not writes:
            writes.append(table)
            toggle(settings, sqlite_url, "csrf_tokens_enabled", True)

    # When it is copied
    report = copy_database(settings, source_url=sqlite_url, target_url=pg_url, progress=progress)
    # Then the copy is the file as it was when the copy began, and it verifies
    assert writes and report.audit_events == events
    assert len(contents(sqlite_url)["flag_audit_events"]) == events + 1
    assert chain_intact(settings, pg_url)


CHILD = """
import sys, time
from pathlib import Path
from backend.core.config import Settings
from backend.db.transfer import copy_database

def progress(table, done, total):
    if table == "flag_audit_events":
        print("halfway", flush=True)
        time.sleep(120)

settings = Settings(data_dir=Path(sys.argv[1]), log_dir=Path(sys.argv[2]))
copy_database(settings, source_url=sys.argv[3], target_url=sys.argv[4], progress=progress)
"""


def kill_halfway(settings: Settings, source: str, target: str) -> None:
    """Run the copy in a child process and kill it once part of the rows went in."""
    args = [str(settings.data_dir), str(settings.log_dir), source, target]
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, *args], cwd=PROJECT_ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "halfway"
    finally:
        child.kill()
        child.wait()


def test_copy_to_postgresql__killed_halfway__changes_nothing_and_a_rerun_completes(
    settings: Settings, sqlite_url: str, pg_url: str
) -> None:
    # Given PostgreSQL holding an earlier copy, and new changes in the SQLite file
    fill(settings, sqlite_url)
    copy_database(settings, source_url=sqlite_url, target_url=pg_url)
    before = contents(pg_url)
    toggle(settings, sqlite_url, "csrf_tokens_enabled", True)
    # When a copy is killed halfway through
    kill_halfway(settings, sqlite_url, pg_url)
    # Then PostgreSQL is as it was, and both sides are usable
    assert contents(pg_url) == before
    assert chain_intact(settings, pg_url) and chain_ok(settings, sqlite_url)
    # and the copy run again completes
    report = copy_database(settings, source_url=sqlite_url, target_url=pg_url)
    assert report.mode == "copied" and contents(pg_url) == contents(sqlite_url)


def test_copy_to_sqlite__killed_halfway__changes_nothing_and_a_rerun_completes(
    settings: Settings, sqlite_url: str, pg_url: str
) -> None:
    # Given PostgreSQL ahead of the SQLite file
    fill(settings, sqlite_url)
    copy_database(settings, source_url=sqlite_url, target_url=pg_url)
    toggle(settings, pg_url, "csrf_tokens_enabled", True)
    before = contents(sqlite_url)
    # When a copy onto the file is killed halfway through
    kill_halfway(settings, pg_url, sqlite_url)
    # Then the file is as it was, and usable
    assert contents(sqlite_url) == before
    assert chain_intact(settings, sqlite_url)
    # and the copy run again completes
    report = copy_database(settings, source_url=pg_url, target_url=sqlite_url)
    assert report.mode == "copied" and contents(sqlite_url) == contents(pg_url)


def test_copy_onto_sqlite__file_open_in_another_process__refused_and_unchanged(
    settings: Settings, sqlite_url: str, pg_url: str
) -> None:
    # Given PostgreSQL ahead of the SQLite file, which a server process still has open
    fill(settings, sqlite_url)
    copy_database(settings, source_url=sqlite_url, target_url=pg_url)
    toggle(settings, pg_url, "csrf_tokens_enabled", True)
    before = contents(sqlite_url)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sqlite3, sys, time\n"
            "c = sqlite3.connect(sys.argv[1]); c.execute('SELECT 1 FROM flag_store').fetchall()\n"
            "print('open', flush=True); time.sleep(60)",
            str(settings.sqlite_path),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "open"
        # When PostgreSQL is copied onto the file
        with pytest.raises(CopyRefused, match=r"open in process\(es\) \d+: stop the server"):
            copy_database(settings, source_url=pg_url, target_url=sqlite_url)
    finally:
        holder.kill()
        holder.wait()
    # Then the file is untouched
    assert contents(sqlite_url) == before


def test_copy__password_in_the_url__never_shown(
    settings: Settings, sqlite_url: str, pg_url: str
) -> None:
    # Given a PostgreSQL URL with a password (the test server trusts, and ignores it)
    with_password = pg_url.replace("postgres@", "postgres:s3cret-pw@")
    # When the copy reports
    report = copy_database(settings, source_url=sqlite_url, target_url=with_password)
    # Then the password is masked
    assert "s3cret-pw" not in report.target and "***" in report.target
