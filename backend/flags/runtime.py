"""The flag control plane of one process: snapshot refresh, propagation, and the use cases
that change flags (each one transaction, then logged and published at once).

While the store is unreachable, flags are served from the last-known-state file, and
rollbacks are journaled (backend.flags.journal) and replayed when the store answers again.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from backend.flags import journal, last_known, notify, service, snapshot
from backend.flags.builder import SnapshotBuilder
from backend.flags.errors import (
    FlagNotFound,
    FlagStoreUnavailable,
    RollbackModeActive,
)
from backend.flags.journal import JournalEntry
from backend.flags.last_known import FlagRecord
from backend.flags.models import FlagStoreRow
from backend.flags.outcomes import RollbackResult, ToggleResult, fmt, log_changes, reason_suffix
from backend.flags.snapshot import FlagState, Snapshot

log = logging.getLogger("pcm_ops_tools.flags")


class FlagRuntime:
    """Owns this process's snapshot and every write to the flag store."""

    # The poller writes the last-known-state file once a snapshot has been served this long:
    # not while the request that made the change is still answering (they share the GIL).
    SAVE_AFTER = 0.1

    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        rollback_mode: bool = False,
        overrides: Mapping[str, bool] | None = None,
        state_file: Path | None = None,
        journal_file: Path | None = None,
        poll_interval: float = 0.02,
        listen_timeout: float = 0.5,
        stale_after: float = 5.0,
    ) -> None:
        self.sessions = sessions
        self.builder = SnapshotBuilder(rollback_mode=rollback_mode, overrides=overrides or {})
        self.state_file = state_file
        # Beside the state file unless told otherwise (Settings.rollback_journal_file is that).
        if journal_file is None and state_file is not None:
            journal_file = state_file.with_name("rollback_journal.jsonl")
        self.journal_file = journal_file
        self._journal_sig: tuple[int, int, int] | None = None
        self._saved_version: int | None = None  # in the state file, as far as we know
        self.poll_interval = poll_interval
        self.stale_after = stale_after
        self.last_sync = time.monotonic()
        self.last_error: str | None = None
        self._refresh_lock = threading.Lock()
        self._replay_retry_at = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # PostgreSQL: the poller sleeps on change notifications and still reads the version
        # row at least this often; after a broken listening connection, it polls for a while.
        self.listen_timeout = listen_timeout
        self.listener: notify.Listener | None = None
        self._listen_retry_at = 0.0
        self._listen_failing = False

    @property
    def rollback_mode(self) -> bool:
        return self.builder.rollback_mode

    @property
    def overrides(self) -> dict[str, bool]:
        return self.builder.overrides

    @property
    def boot_values(self) -> dict[str, bool]:
        return self.builder.boot_values

    # -- reading the store ------------------------------------------------------------
    def refresh(self, *, force: bool = False) -> Snapshot:
        """Load what changed in the store since the served snapshot and publish the result.

        Incremental: only the flags written after the served version are read and rebuilt.
        Everything is reloaded when forced, at start, after serving the last-known state,
        when the store's version went back (another database), and while a journal is
        pending, which is replayed first and, until then, laid over what the store says,
        so that a rolled-back flag never flips back on in between."""
        with contextlib.suppress(SQLAlchemyError):
            force = bool(self.replay_journal()) or force
        with self._refresh_lock:
            try:
                with self.sessions() as s:
                    current = snapshot.current()
                    sig = journal.signature(self.journal_file)
                    full = (
                        force
                        or current.version < 0
                        or current.from_last_known_state
                        or bool(current.journaled)
                        or sig is not None
                        or sig != self._journal_sig
                    )
                    version, rows = last_known.read_since(s, -1 if full else current.version)
                    if version is not None and not full and version < current.version:
                        full = True
                        version, rows = last_known.read_since(s, -1)
                    if version is None:
                        raise FlagStoreUnavailable(
                            "the flag store is not initialised: run backend/db/init_db.py"
                        )
                    if full:
                        self.builder.check_overrides({r.name for r in rows})
                        snapshot.publish(
                            self.builder.build(version, rows, journal.read(self.journal_file))
                        )
                        self._journal_sig = sig
                    elif version != current.version:
                        snapshot.publish(self.builder.extend(current, version, rows))
            except SQLAlchemyError as exc:
                self.last_error = f"{type(exc).__name__}: {exc}".splitlines()[0]
                if self._serve_offline() is None:
                    raise FlagStoreUnavailable(
                        f"flag store unreachable and no last-known state: {self.last_error}"
                    ) from exc
                raise FlagStoreUnavailable(f"flag store unreachable: {self.last_error}") from exc
            self.last_sync = time.monotonic()
            self.last_error = None
            if self._thread is None:
                self.save_state()  # no poller to do it off the request path
            return snapshot.current()

    def _publish_own(self, outcome: service.RollbackOutcome, actor: str) -> None:
        """Serve a rollback this process just committed without reading the store back: when
        the served snapshot is the version right before it, the new state is that snapshot
        with the changed flags as written. Otherwise (another change came in between, or a
        journal is laid over the store) an ordinary refresh loads it."""
        changed = [c for c in outcome.changes if c.changed]
        with self._refresh_lock:
            base = snapshot.current()
            if base.version == outcome.version:
                return  # the poller loaded it already
            at = last_known.iso_utc(outcome.at)
            exact = (
                base.version == outcome.version - 1
                and not base.from_last_known_state
                and not base.journaled
                and self._journal_sig is None
                and all(c.name in base.flags for c in changed)
            )
            if exact:
                rows = []
                for c in changed:
                    f = base.flags[c.name]
                    rows.append(
                        FlagRecord(
                            f.name,
                            c.new,
                            f.rollback_value,
                            f.requires_restart,
                            f.description,
                            f.phase,
                            f.risk,
                            at,
                            actor,
                        )
                    )
                snapshot.publish(self.builder.extend(base, outcome.version, rows))
                self.last_sync = time.monotonic()
        if not exact:
            self.refresh()
        elif self._thread is None:
            self.save_state()

    def save_state(self) -> None:
        """Write the served store state to the last-known-state file, unless it holds this
        version already (written by this process or another worker)."""
        snap = snapshot.current()
        if (
            snap.version == self._saved_version
            or self.state_file is None
            or snap.version < 0
            or snap.from_last_known_state
            or snap.journaled
        ):
            return
        if last_known.saved_version(self.state_file) == snap.version or last_known.save(
            self.state_file, snap.version, last_known.records_of(snap)
        ):
            self._saved_version = snap.version

    def _serve_offline(self, *, force: bool = False) -> Snapshot | None:
        """With the store unreachable: publish the last-known state with the journal laid over
        it, when nothing is served yet or the journal changed. None: nothing can be served."""
        sig = journal.signature(self.journal_file)
        served = snapshot.current()
        if not force and served.version >= 0 and sig == self._journal_sig:
            return served
        loaded = self._load_last_known()
        if loaded is None:
            return None if served.version < 0 else served
        snapshot.publish(loaded)
        self._journal_sig = sig
        return loaded

    def _load_last_known(self) -> Snapshot | None:
        loaded = last_known.load(self.state_file)
        if loaded is None:
            return None
        version, rows = loaded
        snap = self.builder.build(version, rows, journal.read(self.journal_file))
        log.warning(
            "Feature flag store unreachable: serving last-known state version %s%s",
            snap.version,
            f" with {len(snap.journaled)} journaled rollback(s)" if snap.journaled else "",
        )
        return Snapshot(
            version=snap.version,
            rollback_mode=snap.rollback_mode,
            flags=snap.flags,
            from_last_known_state=True,
            journaled=snap.journaled,
        )

    # -- propagation --------------------------------------------------------------------
    def start_polling(self) -> None:
        """Watch the store's version on one connection and refresh when it moves."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._poll, name="flag-poller", daemon=True)
        self._thread.start()

    def stop_polling(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
            self._thread = None

    def _pause(self, listener: notify.Listener | None) -> bool:
        """Wait for the next look at the store: a change notification (PostgreSQL) or, when
        there is none, the poll interval. False once polling is to stop."""
        if listener is not None and time.monotonic() >= self._listen_retry_at:
            try:
                # In slices, so that stop_polling never waits for a whole listen_timeout.
                deadline = time.monotonic() + self.listen_timeout
                while not self._stop.is_set():
                    left = deadline - time.monotonic()
                    if listener.wait(max(0.0, min(left, 0.25))) or left <= 0.25:
                        break
            except Exception as exc:  # the listening connection broke: poll until it is back
                self._listen_retry_at = time.monotonic() + 1.0
                if not self._listen_failing:  # once per outage, not once per retry
                    self._listen_failing = True
                    log.warning(
                        "flag change notifications lost, polling every %.0f ms: %s: %s",
                        self.poll_interval * 1000,
                        type(exc).__name__,
                        str(exc).splitlines()[0] if str(exc) else "connection closed",
                    )
            else:
                if self._listen_failing:
                    self._listen_failing = False
                    log.info("flag change notifications restored")
                return not self._stop.is_set()
        return not self._stop.wait(self.poll_interval)

    def _poll(self) -> None:
        bind = self.sessions.kw["bind"]
        listener = notify.Listener.for_engine(bind)
        self.listener = listener
        conn: Connection | None = None
        query = select(FlagStoreRow.version).where(FlagStoreRow.id == 1)
        retry_at = 0.0  # while the store is down: when to try it again
        while self._pause(listener):
            if conn is None and time.monotonic() < retry_at:
                # Down: watch the journal every interval, so that a rollback journaled by
                # another process is served here within the propagation budget.
                sig = journal.signature(self.journal_file)
                if sig == self._journal_sig:
                    continue
                if sig is not None:
                    self._serve_offline()
                    continue
                retry_at = 0.0  # the journal was replayed elsewhere: the store is back
            try:
                if conn is None:
                    conn = bind.connect()
                version = conn.execute(query).scalar()
                conn.rollback()
                served = snapshot.current()
                sig = journal.signature(self.journal_file)
                if (
                    version != served.version
                    or served.from_last_known_state
                    or sig is not None  # a journal to replay
                    or sig != self._journal_sig
                ):
                    self.refresh()
                else:
                    self.last_sync = time.monotonic()
                if snapshot.current().age_seconds >= self.SAVE_AFTER:
                    self.save_state()  # here, off the request path and after the change
            except (SQLAlchemyError, FlagStoreUnavailable) as exc:
                self.last_error = str(exc).splitlines()[0]
                if conn is not None:
                    with contextlib.suppress(SQLAlchemyError):
                        conn.close()
                conn = None
                retry_at = time.monotonic() + min(1.0, self.poll_interval * 25)
        if conn is not None:
            conn.close()
        if listener is not None:
            listener.close()

    def health(self) -> dict[str, Any]:
        snap = snapshot.current()
        since_sync = time.monotonic() - self.last_sync
        stale = since_sync > self.stale_after or snap.version < 0
        # Read from the file, not the snapshot: journaled rollbacks not yet in the store.
        pending = journal.read(self.journal_file)
        ok = not stale and self.last_error is None and not pending
        return {
            "status": "healthy" if ok else "unhealthy",
            "store_reachable": self.last_error is None,
            "version": snap.version,
            "flags": len(snap.flags),
            "snapshot_age_seconds": round(snap.age_seconds, 3),
            "seconds_since_sync": round(since_sync, 3),
            "stale": stale,
            "from_last_known_state": snap.from_last_known_state,
            "rollback_mode": self.rollback_mode,
            "overrides": dict(self.overrides),
            "pending_restart": sorted(n for n, f in snap.flags.items() if f.pending_restart),
            "journaled_rollbacks": [e.id for e in pending],
            # How changes made elsewhere arrive: PostgreSQL notifications, or polling.
            "change_notifications": self.listener is not None and self.listener.connected,
            "error": self.last_error,
        }

    # -- changes --------------------------------------------------------------------------
    def get(self, name: str) -> FlagState:
        try:
            return snapshot.current().flags[name]
        except KeyError:
            raise FlagNotFound(name) from None

    def toggle(
        self, name: str, enabled: bool, *, actor: str, method: str, reason: str = ""
    ) -> ToggleResult:
        # Journaled rollbacks happened first: they go into the store before this change.
        with contextlib.suppress(SQLAlchemyError):
            self.replay_journal(force=True)
        try:
            with self.sessions.begin() as s:
                change, version = service.set_flag(
                    s,
                    name=name,
                    enabled=enabled,
                    actor=actor,
                    method=method,
                    reason=reason,
                    rollback_mode=self.rollback_mode,
                )
        except SQLAlchemyError as exc:
            if not journal.store_unreachable(exc):
                raise FlagStoreUnavailable(
                    f"could not store the change: {exc}".splitlines()[0]
                ) from exc
            return self._journal_toggle(
                name, enabled, actor=actor, method=method, reason=reason, cause=exc
            )
        log.info(
            "Feature flag %s changed: %s -> %s by %s via %s (version %s)%s",
            name,
            fmt(change.old),
            fmt(change.new),
            actor,
            method,
            version,
            reason_suffix(reason),
        )
        self.refresh()  # the version moved, so this loads it unless the poller already did
        return ToggleResult(self.get(name), change.old, change.new, version)

    def rollback(
        self, names: list[str] | None, *, actor: str, method: str, reason: str = ""
    ) -> RollbackResult:
        """Every flag (names=None) or the named ones to their rollback values, in one txn;
        journaled instead when the store is unreachable."""
        started = time.perf_counter()
        with contextlib.suppress(SQLAlchemyError):
            self.replay_journal(force=True)
        try:
            with self.sessions.begin() as s:
                outcome = service.rollback_flags(
                    s, names=names, actor=actor, method=method, reason=reason
                )
        except SQLAlchemyError as exc:
            if not journal.store_unreachable(exc):
                raise FlagStoreUnavailable(
                    f"could not store the rollback: {exc}".splitlines()[0]
                ) from exc
            return self._journal_rollback(
                names, actor=actor, method=method, reason=reason, cause=exc, started=started
            )
        changed = [c for c in outcome.changes if c.changed]
        scope = "emergency rollback" if names is None else "rollback"
        log_changes(
            [(c.name, c.old, c.new) for c in changed],
            f" by {actor} via {method} (version {outcome.version}, {scope} record"
            f" {outcome.record_id}){reason_suffix(reason)}",
        )
        self._publish_own(outcome, actor)
        duration = (time.perf_counter() - started) * 1000
        log.warning(
            "Feature flag %s completed: %d changed, record %s, verification %s, %.1f ms",
            scope,
            len(changed),
            outcome.record_id,
            outcome.verification,
            duration,
        )
        return RollbackResult(
            record_id=outcome.record_id,
            version=outcome.version,
            changed=[{"flag": c.name, "from": c.old, "to": c.new} for c in changed],
            unchanged=[c.name for c in outcome.changes if not c.changed],
            requires_restart=[c.name for c in changed if c.requires_restart],
            verification=outcome.verification,
            duration_ms=round(duration, 2),
        )

    # -- while the store is unreachable: the journal -------------------------------------------
    def _offline_base(self, cause: SQLAlchemyError) -> Snapshot:
        """The state a journaled change applies to; refuses when nothing durable backs it."""
        problem = f"{type(cause).__name__}: {cause}".splitlines()[0]
        self.last_error = problem
        if self.journal_file is None or self.state_file is None:
            raise FlagStoreUnavailable(f"could not store the change: {problem}") from cause
        served = snapshot.current()
        if served.version >= 0 and not self.state_file.exists():
            # The journal must lie over a durable state.
            last_known.save(self.state_file, served.version, last_known.records_of(served))
        loaded = self._serve_offline()
        if loaded is None or not self.state_file.exists():
            raise FlagStoreUnavailable(
                f"flag store unreachable and no last-known state to journal over: {problem}"
            ) from cause
        return loaded

    def _journal(self, entry: JournalEntry) -> Snapshot:
        assert self.journal_file is not None
        journal.append(self.journal_file, entry)
        published = self._serve_offline(force=True)
        assert published is not None
        return published

    def _journal_toggle(
        self,
        name: str,
        enabled: bool,
        *,
        actor: str,
        method: str,
        reason: str,
        cause: SQLAlchemyError,
    ) -> ToggleResult:
        base = self._offline_base(cause)
        flag = base.flags.get(name)
        if flag is None:
            raise FlagNotFound(name)
        if self.rollback_mode and enabled:
            raise RollbackModeActive(
                f"cannot enable {name!r}: rollback mode is on"
                " (FEATURE_FLAG_ROLLBACK_MODE_ENABLED=true)"
            )
        if enabled != flag.rollback_value:
            raise FlagStoreUnavailable(
                f"cannot {'enable' if enabled else 'disable'} {name!r} while the database is"
                f" unreachable: only changes to a flag's rollback value are journaled"
                f" ({self.last_error})"
            )
        entry = journal.new_entry(
            kind="toggle", names=[name], actor=actor, method=method, reason=reason, enabled=enabled
        )
        snap = self._journal(entry)
        log.warning(
            "Feature flag %s changed: %s -> %s by %s via %s (journaled as %s: database"
            " unreachable, replayed when it returns)%s",
            name,
            fmt(flag.stored_enabled),
            fmt(enabled),
            actor,
            method,
            entry.id,
            reason_suffix(reason),
        )
        return ToggleResult(snap.flags[name], flag.stored_enabled, enabled, snap.version, entry.id)

    def _journal_rollback(
        self,
        names: list[str] | None,
        *,
        actor: str,
        method: str,
        reason: str,
        cause: SQLAlchemyError,
        started: float,
    ) -> RollbackResult:
        base = self._offline_base(cause)
        for name in names or []:
            if name not in base.flags:
                raise FlagNotFound(name)
        scope = sorted(base.flags if names is None else set(names))
        before = {n: base.flags[n] for n in scope}
        entry = journal.new_entry(
            kind="rollback", names=names, actor=actor, method=method, reason=reason
        )
        snap = self._journal(entry)
        changed = [f for f in before.values() if f.stored_enabled != f.rollback_value]
        wrong = [n for n in scope if snap.flags[n].stored_enabled != snap.flags[n].rollback_value]
        what = "emergency rollback" if names is None else "rollback"
        log_changes(
            [(f.name, f.stored_enabled, f.rollback_value) for f in changed],
            f" by {actor} via {method} ({what} journaled as {entry.id}: database unreachable,"
            f" replayed when it returns){reason_suffix(reason)}",
        )
        duration = (time.perf_counter() - started) * 1000
        verification = "journaled" if not wrong else "failed"
        log.warning(
            "Feature flag %s journaled: %d changed, entry %s, verification %s, %.1f ms",
            what,
            len(changed),
            entry.id,
            verification,
            duration,
        )
        return RollbackResult(
            record_id=None,
            version=snap.version,
            changed=[
                {"flag": f.name, "from": f.stored_enabled, "to": f.rollback_value} for f in changed
            ],
            unchanged=[n for n in scope if before[n].stored_enabled == before[n].rollback_value],
            requires_restart=[f.name for f in changed if f.requires_restart],
            verification=verification,
            duration_ms=round(duration, 2),
            journal_id=entry.id,
        )

    def replay_journal(self, *, force: bool = False) -> list[str]:
        """Put journaled rollbacks into the store (one transaction, each entry once), then move
        the journal aside. Raises SQLAlchemyError while the store is still unreachable.

        After a failure, the poller's calls wait a second; `force` (a change about to be made,
        which must land after the journaled ones) does not."""
        path = self.journal_file
        if path is None or not path.exists():
            return []
        if not force and time.monotonic() < self._replay_retry_at:
            return []
        try:
            with journal.locked(path):
                entries = journal.read(path)  # another process may have replayed it already
                with self.sessions.begin() as s:
                    applied = journal.replay(s, entries)
                if path.exists():
                    archived = journal.archive(path)
                    log.warning(
                        "Feature flag journal replayed: %d of %d entries applied (%s), moved to %s",
                        len(applied),
                        len(entries),
                        ", ".join(e.id for e in applied) or "none new",
                        archived.name,
                    )
        except SQLAlchemyError:
            self._replay_retry_at = time.monotonic() + 0.2
            raise
        except Exception:
            # Never let a replay problem stop the poller or a rollback: retry in a second.
            self._replay_retry_at = time.monotonic() + 1.0
            log.exception("could not replay the rollback journal %s", path)
            return []
        return [e.id for e in applied]
