"""Create or upgrade the schema (Alembic) and seed defaults; safe to run any number of times.

python backend/db/init_db.py
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the project importable, in its .venv
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from backend.core.venv import use_project_venv

    use_project_venv()

from alembic import command
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import Engine, text

from backend.core.config import PROJECT_ROOT, Settings, get_settings
from backend.core.filemodes import private_dir, restrict_umask, tighten_private_dirs
from backend.db.session import engine_for, session_factory
from backend.flags.models import FlagStoreRow
from backend.flags.service import seed_flags
from backend.security.audit_keys import restart_checkpoints
from backend.security.tokens import Role, create_token, token_is_valid
from backend.security.users import create_user, generate_password, list_users

# The revision from which audit events are keyed (HMAC); below it they are plain SHA-256.
KEYED_AUDIT = "0007_audit"


@dataclass
class InitReport:
    database: str
    flags_added: list[str] = field(default_factory=list)
    admin_token_created: bool = False
    admin_token_path: Path | None = None
    admin_user_created: bool = False
    admin_password_path: Path | None = None
    # Alembic revisions before and after the upgrade: equal when the schema was current.
    schema_before: tuple[str, ...] = ()
    schema_after: tuple[str, ...] = ()

    @property
    def migrated(self) -> bool:
        return self.schema_before != self.schema_after

    def login_hint(self, base_url: str) -> list[str]:
        """What to tell the operator, once, when the first admin was just created; `base_url`
        is where the server listens (or will)."""
        if not self.admin_user_created:
            return []
        return [
            f"Created the first user 'admin'; its password is in {self.admin_password_path} "
            "(mode 0600).",
            f"Sign in at {base_url}/login, or: curl -c cookies"
            " -H 'Content-Type: application/json'"
            f' -d \'{{"username": "admin", "password": "..."}}\' {base_url}/api/auth/login',
            "Then change it: ./pcm-ops user passwd admin (and delete the password file).",
        ]


def alembic_config() -> Config:
    cfg = Config(str(PROJECT_ROOT / "alembic.ini"))
    cfg.set_main_option("script_location", str(PROJECT_ROOT / "migrations"))
    return cfg


def schema_revisions(engine: Engine) -> tuple[str, ...]:
    """The Alembic revisions the database is at (empty when it has no schema yet)."""
    with engine.connect() as conn:
        return tuple(sorted(MigrationContext.configure(conn).get_current_heads()))


def upgrade_schema(engine: Engine, revision: str = "heads") -> None:
    cfg = alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


# The PostgreSQL advisory lock that init_db holds ("pcm_init" in ASCII).
INIT_LOCK_KEY = 0x70636D5F696E6974


@contextlib.contextmanager
def init_lock(settings: Settings, engine: Engine) -> Iterator[None]:
    """One init_db at a time: between the processes sharing the data directory (an flock:
    the workers of a server, the CLI) and, on PostgreSQL, between every instance sharing the
    database (an advisory lock, released with the transaction that holds it)."""
    fd = os.open(settings.data_dir / "init_db.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        if engine.dialect.name != "postgresql":
            yield
            return
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": INIT_LOCK_KEY})
            yield
    finally:
        os.close(fd)  # releases the flock


def write_secret_file(path: Path, content: str) -> None:
    """Write a secret readable by its owner only (0600), atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(content + "\n")
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def init_db(settings: Settings | None = None, engine: Engine | None = None) -> InitReport:
    """Upgrade the schema and seed defaults, under init_lock. Raises SQLAlchemyError when the
    database cannot be reached (the caller decides whether to start on the last-known state)."""
    settings = settings or get_settings()
    private_dir(settings.data_dir)
    private_dir(settings.log_dir)
    own_engine = engine is None
    engine = engine or engine_for(settings)
    try:
        with init_lock(settings, engine):
            return _init(settings, engine)
    finally:
        if own_engine:
            engine.dispose()


def _init(settings: Settings, engine: Engine) -> InitReport:
    report = InitReport(database=engine.url.render_as_string(hide_password=True))
    report.schema_before = schema_revisions(engine)
    upgrade_schema(engine)
    report.schema_after = schema_revisions(engine)
    sessions = session_factory(engine)
    with sessions.begin() as s:
        new_store = s.get(FlagStoreRow, 1) is None
        report.flags_added = seed_flags(s)
        path = settings.admin_token_path
        existing = path.read_text().strip() if path.exists() else ""
        if not existing or not token_is_valid(s, existing):
            _row, plaintext = create_token(s, name="admin", role=Role.ADMIN)
            write_secret_file(path, plaintext)
            report.admin_token_created = True
        else:
            os.chmod(path, 0o600)  # checked against the database: owner-only is safe now
        report.admin_token_path = path
        if not list_users(s):
            # Existing users are never touched: only an empty table gets the first admin.
            password = generate_password()
            create_user(s, username="admin", password=password, role=Role.ADMIN)
            write_secret_file(settings.admin_password_path, password)
            report.admin_user_created = True
            report.admin_password_path = settings.admin_password_path
    if new_store and settings.audit_checkpoint_file.exists():
        # A new, empty database where one stood before (reinitialised): its checkpoints
        # no longer apply. Verify shows this restart, and the log has it.
        restart_checkpoints(settings, sessions, "new database initialised")
    elif (
        report.schema_before
        and KEYED_AUDIT not in report.schema_before
        and KEYED_AUDIT in report.schema_after
        and settings.audit_checkpoint_file.exists()
    ):
        # Checkpoints exist, so this database was keyed once and downgraded below
        # 0007_audit, which re-chained its events with plain SHA-256: the checkpoints describe
        # the keyed chain that no longer exists. Re-anchored, in the open (verify and the log).
        restart_checkpoints(
            settings, sessions, f"audit chain re-chained by a downgrade below {KEYED_AUDIT}"
        )
    return report


def main() -> int:
    from sqlalchemy.exc import SQLAlchemyError

    from backend.flags.errors import ConfigurationError

    restrict_umask()  # the database, its -wal and -shm, and the secrets: owner-only
    try:
        settings = get_settings()
        tighten_private_dirs(settings)
        report = init_db(settings)
    except ConfigurationError as exc:
        print(f"init_db: {exc}", file=sys.stderr)
        return 2
    except SQLAlchemyError as exc:
        problem = f"{type(exc).__name__}: {exc}".splitlines()[0]
        print(f"init_db: cannot set up the database: {problem}", file=sys.stderr)
        return 5
    print(f"Database ready: {report.database}")
    if report.flags_added:
        print(f"Seeded {len(report.flags_added)} feature flags: {', '.join(report.flags_added)}")
    if report.admin_token_created:
        print(f"Created an admin API token in {report.admin_token_path} (mode 0600).")
        print('Use it as: curl -H "Authorization: Bearer $(cat data/admin_token)" ...')
    for line in report.login_hint(settings.base_url):
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
