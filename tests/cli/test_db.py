"""`pcm-ops db …` and `pcm-ops rollback db` with the server down (in-process) and up (real)."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from tests.cli.conftest import Cli, Server

NAME = re.compile(r"^pcm_ops_tools_backup_\d{8}_\d{6}(_\d+)?\.db$")


def backup(cli: Cli, *args: str) -> dict[str, object]:
    result = cli("db", "backup", "--json", *args)
    assert result.exit_code == 0, result.output
    data: dict[str, object] = json.loads(result.stdout)
    return data


def test_backup_is_named_verified_and_recorded(initialized_cli: Cli) -> None:
    cli = initialized_cli
    info = backup(cli, "--note", "before deploy")
    path = Path(str(info["path"]))
    assert NAME.match(path.name) and path.parent == cli.data_dir
    assert info["integrity"] == "ok" and info["note"] == "before deploy"
    assert info["size"] == path.stat().st_size
    assert len(str(info["sha256"])) == 64
    assert path.stat().st_mode & 0o777 == 0o600
    # A backup stands alone: rollback journal mode, no -wal beside it.
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    manifest = json.loads((cli.data_dir / "backups.json").read_text())["entries"]
    assert [e["file"] for e in manifest] == [path.name]
    second = backup(cli)
    assert second["file"] != info["file"]  # same second: suffixed, never overwritten

    listed = json.loads(cli("db", "list", "--json").stdout)
    assert [i["file"] for i in listed] == [second["file"], info["file"]]
    assert {i["status"] for i in listed} == {"ok"}

    checked = cli("db", "verify", path.name, "--json")
    assert checked.exit_code == 0, checked.output
    assert json.loads(checked.stdout)["sha256_recorded"] is True
    live = cli("db", "verify", "--json")
    assert live.exit_code == 0, live.output
    assert "intact" in json.loads(live.stdout)["audit_chain"]
    assert "Database backup" in cli.log_file.read_text()


def test_backup_without_database_is_not_found(cli: Cli) -> None:
    result = cli("db", "backup")
    assert result.exit_code == 3
    assert "no database to back up" in result.output


def test_corrupt_and_foreign_files_are_refused(initialized_cli: Cli) -> None:
    cli = initialized_cli
    info = backup(cli)
    path = Path(str(info["path"]))
    # One flipped byte in a recorded backup: the recorded SHA-256 catches it.
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    result = cli("db", "verify", path.name)
    assert result.exit_code == 2 and "SHA-256" in result.output
    # The same damage in an unrecorded copy: the integrity check catches it.
    stray = cli.data_dir / "copy.db"
    page = bytearray(Path(str(info["path"])).read_bytes())
    page[4096 * 2 : 4096 * 3] = os.urandom(4096)
    stray.write_bytes(bytes(page))
    result = cli("db", "restore", str(stray))
    assert result.exit_code == 2, result.output
    assert "refused" in result.output
    text = cli.data_dir / "notes.txt"
    text.write_text("not a database\n" * 20)
    result = cli("db", "restore", str(text))
    assert result.exit_code == 2 and "not an SQLite database" in result.output
    foreign = cli.data_dir / "other_app.db"
    with sqlite3.connect(foreign) as conn:
        conn.execute("CREATE TABLE users (id INTEGER)")
    result = cli("db", "restore", str(foreign))
    assert result.exit_code == 2 and "not a PCM-Ops Tools one" in result.output
    assert cli("db", "restore", "nope.db").exit_code == 3
    # Nothing was touched: no pre-restore backup taken, the database is still sound.
    kinds = [e["kind"] for e in json.loads((cli.data_dir / "backups.json").read_text())["entries"]]
    assert kinds == ["manual"]
    assert cli("db", "verify").exit_code == 0


def test_restore_backs_up_first_records_and_keeps_the_manifest(initialized_cli: Cli) -> None:
    cli = initialized_cli
    assert cli.flag("csrf_tokens_enabled") is True
    info = backup(cli)
    assert cli("flags", "disable", "csrf_tokens_enabled").exit_code == 0
    assert cli.flag("csrf_tokens_enabled") is False

    result = cli("rollback", "db", str(info["file"]), "--reason", "bad migration", "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert cli.flag("csrf_tokens_enabled") is True
    assert out["integrity"] == "ok" and out["pre_restore_backup"]
    assert not Path(f"{cli.db}-wal").exists() or Path(f"{cli.db}-wal").stat().st_size == 0
    # The pre-restore backup holds the state just before the restore.
    pre = cli.data_dir / out["pre_restore_backup"]
    with sqlite3.connect(pre) as conn:
        row = conn.execute("SELECT enabled FROM feature_flags WHERE name='csrf_tokens_enabled'")
        assert row.fetchone()[0] == 0
    # The manifest outlived the database it described.
    kinds = [e["kind"] for e in json.loads((cli.data_dir / "backups.json").read_text())["entries"]]
    assert kinds == ["manual", "pre-restore"]
    shown = cli("records", "show", str(out["record_id"]))
    assert shown.exit_code == 0, shown.output
    assert "ROLLBACK INITIATED" in shown.output and "Method: database" in shown.output
    assert "Trigger: bad migration" in shown.output
    report = cli("records", "report", str(out["record_id"]), "--impact", "all operators")
    assert "SUBJECT: [URGENT] PCM-Ops Tools Rollback - database" in report.output
    assert f"Database restored from {info['file']}" in report.output
    assert "IMPACT: all operators" in report.output
    assert "server not answering" in report.output
    assert "Database restored from" in cli.log_file.read_text()


def test_restore_over_a_damaged_database_keeps_its_files(initialized_cli: Cli) -> None:
    cli = initialized_cli
    info = backup(cli)
    cli.db.write_bytes(b"SQLite format 3\x00" + os.urandom(8192))
    result = cli("db", "restore", str(info["file"]), "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["pre_restore_backup"] is None
    assert out["preserved"] and Path(out["preserved"][0]).exists()
    assert cli("db", "verify").exit_code == 0


WRITER = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=10)
conn.execute("PRAGMA journal_mode=WAL")
conn.execute("CREATE TABLE IF NOT EXISTS ticks (n INTEGER PRIMARY KEY, at REAL)")
print("ready", flush=True)
n = 0
while True:
    n += 1
    conn.execute("INSERT INTO ticks VALUES (?, ?)", (n, time.time()))
"""


def test_backup_while_writing_then_restore_refused_while_open(initialized_cli: Cli) -> None:
    cli = initialized_cli
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(cli.db)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert writer.stdout is not None and writer.stdout.readline().strip() == "ready"
        time.sleep(0.2)
        info = backup(cli)
        refused = cli("db", "restore", str(info["file"]))
        assert refused.exit_code == 4, refused.output
        assert f"open in process(es) {writer.pid}" in refused.output
        with sqlite3.connect(cli.db) as conn:
            later = conn.execute("SELECT max(n) FROM ticks").fetchone()[0]
    finally:
        writer.kill()
        writer.wait()
    # One consistent snapshot taken mid-stream: ticks 1..k without a gap, k below later totals.
    with sqlite3.connect(Path(str(info["path"]))) as conn:
        count, top = conn.execute("SELECT count(*), max(n) FROM ticks").fetchone()
    assert 0 < count == top < later
    result = cli("db", "restore", str(info["file"]), "--json")
    assert result.exit_code == 0, result.output
    with sqlite3.connect(cli.db) as conn:
        assert conn.execute("SELECT count(*), max(n) FROM ticks").fetchone() == (count, top)


def test_prune_keeps_the_newest(initialized_cli: Cli) -> None:
    cli = initialized_cli
    names = [str(backup(cli)["file"]) for _ in range(4)]
    dry = json.loads(cli("db", "prune", "--keep", "1", "--dry-run", "--json").stdout)
    assert dry["would_delete"] == names[2::-1]
    assert all((cli.data_dir / n).exists() for n in names)
    done = json.loads(cli("db", "prune", "--keep", "1", "--json").stdout)
    assert sorted(done["deleted"]) == sorted(names[:3])
    assert [p.name for p in cli.data_dir.glob("pcm_ops_tools_backup_*")] == [names[3]]
    listed = json.loads(cli("db", "list", "--json").stdout)
    assert [i["file"] for i in listed] == [names[3]]


def test_restore_with_the_server_running(server: Server) -> None:
    pcm = str(server.root / ".venv" / "bin" / "pcm-ops")
    made = server.run(pcm, "db", "backup", "--json")  # online, the server keeps running
    assert made.returncode == 0, made.stderr
    name = json.loads(made.stdout)["file"]
    with server.client() as c:
        assert (
            c.post(
                "/api/feature-flags/toggle",
                json={"flag_name": "xss_protection_enabled", "enabled": False},
            ).status_code
            == 200
        )
    refused = server.run(pcm, "rollback", "db", name)
    assert refused.returncode == 4
    assert "server is running" in refused.stderr and "--stop" in refused.stderr
    done = server.run(pcm, "rollback", "db", name, "--stop", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    out = json.loads(done.stdout)
    assert out["server_restarted"] is True
    with server.client() as c:
        assert c.get("/api/health").status_code == 200
        assert c.get("/api/feature-flags/xss_protection_enabled").json()["enabled"] is True
        record = c.get(f"/api/rollback-records/{out['record_id']}").json()
        assert record["method"] == "database" and record["feature"] == "database"
    listed = server.run(pcm, "records", "list", "--json")
    assert json.loads(listed.stdout)[0]["id"] == out["record_id"]
    report = server.run(pcm, "records", "report", str(out["record_id"]))
    assert "STATUS: rollback verification success; application healthy" in report.stdout
