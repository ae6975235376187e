"""Which database is the primary, decided at start-up, and the switch that moves the data.

The `postgresql_support` flag moves the primary between the SQLite file and PCM_POSTGRES_URL.
The decision never opens a database: rollback mode, then FEATURE_FLAG_POSTGRESQL_SUPPORT, then
the flag as this instance last knew it (the last-known state file with the rollback journal
laid over it), so that the runbook's rollback works while PostgreSQL is the thing that is down.
The outcome is written to the primary file (backend.core.primary_file), which every command
then follows. DATABASE_URL pins the database: nothing switches and the flag only reports.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass

from sqlalchemy import make_url, text
from sqlalchemy.exc import SQLAlchemyError

from backend.core import primary_file
from backend.core.config import Settings
from backend.core.filemodes import private_dir
from backend.core.primary_file import Backend, PrimaryState, now_iso
from backend.db.outage import first_line, unreachable
from backend.db.session import engine_for, make_engine, session_factory, shown_url
from backend.db.transfer import CopyRefused, CopyReport, copy_database
from backend.flags import journal, last_known
from backend.flags.builder import SnapshotBuilder
from backend.flags.last_known import FlagRecord
from backend.flags.registry import DEFAULT_FLAGS
from backend.security.audit_keys import restart_checkpoints
from backend.security.credentials_crypto import KeyRingError

log = logging.getLogger("pcm_ops_tools.db")

FLAG = "postgresql_support"
# Switching back to SQLite must not wait out the engine's 5 s connect timeout twice over.
PROBE_TIMEOUT = 2  # seconds
ENABLE_REFUSED = (
    f"cannot enable {FLAG!r}: set PCM_POSTGRES_URL first"
    " (the PostgreSQL database to switch to, postgresql+psycopg://user@host/db), then enable it"
)
_SOURCES = {
    "rollback_mode": "rollback mode",
    "env": "FEATURE_FLAG_POSTGRESQL_SUPPORT",
    "journal": "rollback journaled while the database was down",
    "stored": "last-known flag state",
}


@dataclass(frozen=True, slots=True)
class Switch:
    """What start-up did about the primary database, in words an operator reads."""

    backend: str  # what the app runs on now
    note: str  # one line: what happened and why
    switched: bool = False
    refused: str | None = None  # why a wanted switch did not happen
    warning: str | None = None  # something the operator must act on

    @property
    def log_line(self) -> str:
        return f"Database backend: {self.backend} ({self.note})"


def flag_as_known(settings: Settings) -> tuple[bool, str]:
    """The flag's value as this instance last knew it, and where that comes from, with the
    precedence the flags are served with (rollback mode, environment, journal, stored)."""
    builder = SnapshotBuilder(
        rollback_mode=settings.rollback_mode, overrides=settings.flag_overrides
    )
    loaded = last_known.load(settings.state_file)
    record = next((r for r in loaded[1] if r.name == FLAG), None) if loaded else None
    if record is None:
        definition = next(d for d in DEFAULT_FLAGS if d.name == FLAG)
        record = FlagRecord(
            FLAG,
            definition.default,
            definition.rollback_value,
            definition.requires_restart,
            definition.description,
            definition.phase,
            str(definition.risk),
            "1970-01-01T00:00:00+00:00",
            "default",
        )
    state = builder.state(record, journal.read(settings.rollback_journal_file))
    source = _SOURCES.get(state.source, state.source)
    if state.source == "stored" and loaded is None:
        source = "its default: no last-known flag state"
    return state.enabled, source


def desired_backend(settings: Settings) -> tuple[Backend, str]:
    """The primary these settings ask for, and why."""
    if not settings.postgres_url:
        return "sqlite", "PCM_POSTGRES_URL is not set"
    enabled, source = flag_as_known(settings)
    return ("postgresql" if enabled else "sqlite"), f"{FLAG} {'on' if enabled else 'off'}, {source}"


def enable_refusals(settings: Settings) -> dict[str, str]:
    """Flags these settings cannot enable, with why: a flag runtime refuses them with 409."""
    if settings.postgres_url or settings.database_url:
        return {}
    return {FLAG: ENABLE_REFUSED}


def boot_values(settings: Settings) -> dict[str, bool]:
    """What the restart-bound flags mean for the running process: postgresql_support is on
    when the app runs on PostgreSQL, so that the flag shows pending_restart until the running
    backend matches it (a refused switch included). Pinned by DATABASE_URL: the flag only
    reports, nothing is pending."""
    if settings.database_url or not settings.postgres_url:
        return {}
    return {FLAG: primary_file.primary_of(settings.primary_state_file) == "postgresql"}


def unsynced_warning(state: PrimaryState) -> str | None:
    if state.backend != "sqlite" or not state.unsynced_since:
        return None
    return (
        f"writes made on PostgreSQL since {state.unsynced_since} are not in this database:"
        " run `pcm-ops db sync --from postgresql` once PostgreSQL answers"
    )


@contextlib.contextmanager
def _switch_lock(settings: Settings) -> Iterator[None]:
    """One switch at a time among the processes sharing the data directory (the workers)."""
    private_dir(settings.data_dir)
    fd = os.open(settings.data_dir / "primary_switch.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def ensure_primary(settings: Settings) -> Switch:
    """Make the primary database the one the settings ask for, moving the data, before the
    app opens its engine. Never raises for a refused or failed switch: the app then starts on
    the side it was on, and the Switch (logged, in /api/health) says why."""
    state = primary_file.read(settings.primary_state_file)
    if settings.database_url:
        pinned = make_url(settings.database_url).get_backend_name()
        return Switch(pinned, "pinned by DATABASE_URL: postgresql_support only reports")
    desired, why = desired_backend(settings)
    if desired == state.backend:
        return _staying(state, why)
    with _switch_lock(settings):
        state = primary_file.read(settings.primary_state_file)  # another worker switched?
        if desired == state.backend:
            return _staying(state, why)
        if desired == "postgresql":
            return _to_postgresql(settings, state, why)
        return _to_sqlite(settings, state, why)


def _staying(state: PrimaryState, why: str) -> Switch:
    return Switch(state.backend, f"no switch: {why}", warning=unsynced_warning(state))


def _moved(report: CopyReport) -> str:
    if report.mode == "adopted":
        return "nothing copied: the target held everything already"
    if report.mode == "nothing":
        return "nothing copied: both sides were equal"
    verified = "audit chain verified" if report.audit_verified else "audit chain NOT verified"
    return f"{report.rows} rows moved, {verified}"


def _refused(settings: Settings, state: PrimaryState, desired: Backend, reason: str) -> Switch:
    note = f"switch to {desired} refused, staying on {state.backend}: {reason}"
    primary_file.write(settings.primary_state_file, state.but(note=note))
    return Switch(state.backend, note, refused=reason, warning=unsynced_warning(state))


def _to_postgresql(settings: Settings, state: PrimaryState, why: str) -> Switch:
    assert settings.postgres_url is not None  # desired_backend
    now = now_iso()
    if not settings.sqlite_path.exists():
        note = f"switched from sqlite ({why}): no SQLite database to copy, PostgreSQL as it is"
    else:
        try:
            report = copy_database(
                settings, source_url=settings.sqlite_url, target_url=settings.postgres_url
            )
        except CopyRefused as exc:
            return _refused(settings, state, "postgresql", str(exc))
        except SQLAlchemyError as exc:
            problem = f"PostgreSQL {shown_url(settings.postgres_url)}: {first_line(exc)}"
            return _refused(settings, state, "postgresql", problem)
        except Exception as exc:  # a failed copy must not stop the start where the app was
            log.exception("copy to PostgreSQL failed")
            return _refused(settings, state, "postgresql", f"the copy failed: {first_line(exc)}")
        note = f"switched from sqlite, {_moved(report)}"
    new = state.but(
        backend="postgresql", switched_at=now, synced_at=now, unsynced_since=None, note=note
    )
    primary_file.write(settings.primary_state_file, new)
    return Switch("postgresql", note, switched=True)


def probe(url: str) -> str | None:
    """Why PostgreSQL cannot be reached now (within seconds), or None when it answers."""
    engine = make_engine(url, connect_args={"connect_timeout": PROBE_TIMEOUT})
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        return first_line(exc)
    finally:
        engine.dispose()
    return None


def _to_sqlite(settings: Settings, state: PrimaryState, why: str) -> Switch:
    url = settings.postgres_url
    problem = "PCM_POSTGRES_URL is not set" if url is None else probe(url)
    if url is not None and problem is None:
        try:
            report = copy_database(settings, source_url=url, target_url=settings.sqlite_url)
        except CopyRefused as exc:
            return _refused(settings, state, "sqlite", str(exc))
        except SQLAlchemyError as exc:
            if not unreachable(exc):
                return _refused(settings, state, "sqlite", first_line(exc))
            problem = first_line(exc)  # went away during the copy
        except Exception as exc:  # a failed copy must not stop the start where the app was
            log.exception("copy back to SQLite failed")
            return _refused(settings, state, "sqlite", f"the copy failed: {first_line(exc)}")
        else:
            kept = f"; previous SQLite file kept as {report.backup.name}" if report.backup else ""
            now = now_iso()
            note = f"switched from postgresql, {_moved(report)}{kept}"
            new = state.but(
                backend="sqlite", switched_at=now, synced_at=now, unsynced_since=None, note=note
            )
            primary_file.write(settings.primary_state_file, new)
            return Switch("sqlite", note, switched=True)
    now = now_iso()
    since = state.unsynced_since or state.synced_at or state.switched_at or now
    note = (
        f"switched from postgresql ({why}) without copying back: PostgreSQL unreachable ({problem})"
    )
    new = state.but(backend="sqlite", switched_at=now, unsynced_since=since, note=note)
    primary_file.write(settings.primary_state_file, new)
    _restart_checkpoints(
        settings, f"primary back on sqlite without PostgreSQL's writes since {since}"
    )
    return Switch("sqlite", note, switched=True, warning=unsynced_warning(new))


def _restart_checkpoints(settings: Settings, note: str) -> None:
    """The audit checkpoints signed while on PostgreSQL describe a chain the SQLite file does
    not have (yet): re-anchor them on its head, in the open (verify shows the restart)."""
    if not settings.sqlite_path.exists():
        return
    engine = engine_for(settings, create=False)
    try:
        restart_checkpoints(settings, session_factory(engine), note)
    except (SQLAlchemyError, KeyRingError, OSError) as exc:
        log.warning("audit checkpoints not restarted on the SQLite chain: %s", first_line(exc))
    finally:
        engine.dispose()


def log_switch(switch: Switch) -> None:
    """The one line per start saying which database the app runs on and why."""
    level = logging.WARNING if switch.refused or switch.warning else logging.INFO
    log.log(level, "%s", switch.log_line)
    if switch.warning:
        log.warning("Database warning: %s", switch.warning)
