"""`pcm-ops db backup|restore|verify|list` on a real PostgreSQL database (pg_dump/pg_restore).

CI sets PCM_REQUIRE_POSTGRES=1, so there a missing server fails instead of skipping.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from click.testing import Result

from backend.core.config import Settings
from backend.db.init_db import init_db
from backend.db.pg_backup import PostgresBackup
from tests.cli.conftest import Cli
from tests.postgres import scratch_database

FLAG = "postgresql_support"
NAME = re.compile(r"^pcm_ops_tools_backup_\d{8}_\d{6}(_\d+)?\.dump$")


@dataclass
class PgCli:
    """`pcm-ops` with DATABASE_URL on a scratch PostgreSQL database that init_db set up."""

    cli: Cli
    url: str

    def __call__(self, *args: str) -> Result:
        return self.cli(*args, extra_env={"DATABASE_URL": self.url})

    def json(self, *args: str) -> object:
        result = self.cli(*args, "--json", extra_env={"DATABASE_URL": self.url})
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    def flag(self, name: str) -> bool:
        dsn = self.url.replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(dsn) as conn:
            row = conn.execute("SELECT enabled FROM feature_flags WHERE name = %s", (name,))
            found = row.fetchone()
            assert found is not None, name
            return bool(found[0])


@pytest.fixture
def pg(cli: Cli) -> Iterator[PgCli]:
    with scratch_database("pcm_cli_backup") as (_name, url):
        init_db(Settings(data_dir=cli.data_dir, log_dir=cli.log_file.parent, database_url=url))
        yield PgCli(cli, url)


def test_backup_change_restore_on_postgres(pg: PgCli) -> None:
    before = pg.flag(FLAG)
    info = pg.json("db", "backup", "--note", "before the change")
    assert isinstance(info, dict)
    path = Path(info["path"])
    assert NAME.match(path.name) and path.parent == pg.cli.data_dir
    assert info["engine"] == "postgresql" and info["integrity"].startswith("ok")
    assert path.read_bytes()[:5] == b"PGDMP" and path.stat().st_mode & 0o777 == 0o600

    changed = pg("flags", "disable" if before else "enable", FLAG)
    assert changed.exit_code == 0, changed.output
    assert pg.flag(FLAG) is not before

    restored = pg.json("db", "restore", path.name)
    assert isinstance(restored, dict)
    assert pg.flag(FLAG) is before  # the old state is back
    pre = restored["pre_restore_backup"]
    assert pre and pre != path.name and (pg.cli.data_dir / pre).is_file()
    assert restored["integrity"].startswith("ok") and restored["record_id"] is not None

    listed = pg.json("db", "list")
    assert isinstance(listed, list)
    kinds = {i["file"]: (i["status"], i["record"]["kind"]) for i in listed}
    assert kinds == {path.name: ("ok", "manual"), pre: ("ok", "pre-restore")}
    for name in (path.name, pre):
        checked = pg.json("db", "verify", name)
        assert isinstance(checked, dict) and checked["ok"] and checked["sha256_recorded"]
    live = pg.json("db", "verify")
    assert isinstance(live, dict) and live["ok"] and "intact" in live["audit_chain"]
    # The pre-restore backup holds the changed state: restoring it undoes the restore.
    pg.json("db", "restore", pre)
    assert pg.flag(FLAG) is not before


def test_junk_and_sqlite_files_are_refused_on_postgres(pg: PgCli, tmp_path: Path) -> None:
    before = pg.flag(FLAG)
    junk = tmp_path / "junk.dump"
    junk.write_bytes(b"not a dump at all\n" * 100)
    refused = pg("db", "restore", str(junk))
    assert refused.exit_code == 2, refused.output
    assert "refused" in refused.output and "not a pg_dump custom-format archive" in refused.output

    # The right magic, then garbage: pg_restore cannot read it.
    broken = tmp_path / "broken.dump"
    broken.write_bytes(b"PGDMP" + b"\x00\xff" * 500)
    refused = pg("db", "restore", str(broken))
    assert refused.exit_code == 2, refused.output
    assert "cannot be read" in refused.output

    # A sound dump of some other database is not ours.
    with scratch_database("pcm_cli_foreign") as (_name, url):
        dsn = url.replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(dsn) as conn:
            conn.execute("CREATE TABLE other (id int)")
        foreign = tmp_path / "foreign.dump"
        PostgresBackup(url).copy_to(foreign, None)
    refused = pg("db", "restore", str(foreign))
    assert refused.exit_code == 2, refused.output
    assert "not a PCM-Ops Tools dump" in refused.output

    assert pg.flag(FLAG) is before
    assert not list(pg.cli.data_dir.glob("pcm_ops_tools_backup_*"))  # no pre-restore backup
