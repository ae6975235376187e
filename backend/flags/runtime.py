"""The flag control plane of one process: snapshot refresh, propagation, and the use cases
that change flags (each one transaction, then logged and published at once).

How stored rows become served flags is backend.flags.builder; what happens while the store is
unreachable (the last-known-state file, the rollback journal and its replay) is
backend.flags.offline.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Connection, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from backend.db.lock_wait import busy_timeout_of
from backend.flags import journal, last_known, notify, service, snapshot
from backend.flags.builder import SnapshotBuilder
from backend.flags.errors import (
    EnableRefused,
    FlagNotFound,
    FlagStoreBusy,
    FlagStoreUnavailable,
)
from backend.flags.last_known import FlagRecord
from backend.flags.models import FlagStoreRow
from backend.flags.offline import Offline
from backend.flags.outcomes import (
    RollbackResult,
    ToggleResult,
    fmt,
    log_changes,
    reason_suffix,
    rollback_message,
)
from backend.flags.snapshot import FlagState, Snapshot
from backend.flags.write_queue import WriteQueue

log = logging.getLogger("pcm_ops_tools.flags")
T = TypeVar("T")


def _first_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".splitlines()[0]


class FlagRuntime:
    """Owns this process's snapshot and every write to the flag store."""

    # The poller writes the last-known-state file once a snapshot has been served this long:
    # not while the request that made the change is still answering (they share the GIL).
    SAVE_AFTER = 0.1
    # ... and, under a stream of changes that never lets a snapshot settle, this long after
    # the file first fell behind: the file an offline rollback works on stays close.
    SAVE_WITHIN = 0.5

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
        busy_timeout: float | None = None,
        boot_values: Mapping[str, bool] | None = None,
        enable_refusals: Mapping[str, str] | None = None,
    ) -> None:
        self.sessions = sessions
        # Flags these settings cannot enable, with why (backend.db.primary.enable_refusals).
        self.enable_refusals = dict(enable_refusals or {})
        # How long a change waits out a lock another connection holds before it is refused
        # as busy (the engine's own lock wait, by default).
        self.busy_timeout = (
            busy_timeout_of(sessions.kw["bind"]) if busy_timeout is None else busy_timeout
        )
        self.builder = SnapshotBuilder(
            rollback_mode=rollback_mode, overrides=overrides or {}, boot_values=boot_values
        )
        # Beside the state file unless told otherwise (Settings.rollback_journal_file is that).
        if journal_file is None and state_file is not None:
            journal_file = state_file.with_name("rollback_journal.jsonl")
        self.offline = Offline(self.builder, state_file, journal_file)
        self.poll_interval = poll_interval
        self.stale_after = stale_after
        self.last_sync = time.monotonic()
        self.last_error: str | None = None
        self._refresh_lock = threading.Lock()
        self._write_queue = WriteQueue()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # PostgreSQL: the poller sleeps on change notifications and still reads the version
        # row at least this often; after a broken listening connection, it polls for a while.
        self.listen_timeout = listen_timeout
        self.listener: notify.Listener | None = None
        self._listen_retry_at = 0.0
        self._listen_failing = False

    @property
    def state_file(self) -> Path | None:
        return self.offline.state_file

    @property
    def journal_file(self) -> Path | None:
        return self.offline.journal_file

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
                    sig = self.offline.signature()
                    full = (
                        force
                        or current.version < 0
                        or current.from_last_known_state
                        or bool(current.journaled)
                        or sig is not None
                        or sig != self.offline.journal_sig
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
                        snapshot.publish(self.builder.build(version, rows, self.offline.entries()))
                        self.offline.journal_sig = sig
                    elif version != current.version:
                        snapshot.publish(self.builder.extend(current, version, rows))
            except SQLAlchemyError as exc:
                if journal.store_busy(exc):
                    # Contention, not an outage: keep serving what was read last.
                    raise FlagStoreBusy(f"database busy, retry: {_first_line(exc)}") from exc
                self.last_error = _first_line(exc)
                if self.offline.serve() is None:
                    raise FlagStoreUnavailable(
                        f"flag store unreachable and no last-known state: {self.last_error}"
                    ) from exc
                raise FlagStoreUnavailable(f"flag store unreachable: {self.last_error}") from exc
            self.last_sync = time.monotonic()
            self.last_error = None
            if self._thread is None:
                self.offline.save_state()  # no poller to do it off the request path
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
                and self.offline.journal_sig is None
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
            # Committed already: a failed read back leaves it to the poller, not to the answer.
            with contextlib.suppress(FlagStoreUnavailable):
                self.refresh()
        elif self._thread is None:
            self.offline.save_state()

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
                sig = self.offline.signature()
                if sig == self.offline.journal_sig:
                    continue
                if sig is not None:
                    self.offline.serve()
                    continue
                retry_at = 0.0  # the journal was replayed elsewhere: the store is back
            try:
                if conn is None:
                    conn = bind.connect()
                version = conn.execute(query).scalar()
                conn.rollback()
                served = snapshot.current()
                sig = self.offline.signature()
                if (
                    version != served.version
                    or served.from_last_known_state
                    or sig is not None  # a journal to replay
                    or sig != self.offline.journal_sig
                ):
                    self.refresh()
                else:
                    self.last_sync = time.monotonic()
                # Here, off the request path and after the change.
                self.offline.save_if_due(settled=self.SAVE_AFTER, within=self.SAVE_WITHIN)
            except (SQLAlchemyError, FlagStoreUnavailable) as exc:
                if isinstance(exc, FlagStoreBusy) or journal.store_busy(exc):
                    # Another connection holds a lock: the store is up; look again next time.
                    if conn is not None:
                        with contextlib.suppress(SQLAlchemyError):
                            conn.rollback()
                    continue
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
        pending = self.offline.entries()
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

    def _write(self, use_case: Callable[[Session], T], what: str) -> T:
        """Run `use_case` in one transaction. A lock another connection holds is waited for
        (the engine's lock wait) and the transaction retried until `busy_timeout` is spent;
        then FlagStoreBusy. Other database errors are the caller's to judge."""
        deadline = time.monotonic() + self.busy_timeout
        # This process's writers take turns here, in order of arrival, instead of all polling
        # the database's lock: SQLite's busy handler is not fair, and under a crowd of
        # writers one of them could lose every retry until its wait bound ran out.
        if not self._write_queue.acquire(self.busy_timeout):
            raise FlagStoreBusy(
                f"database busy, retry: could not {what} within {self.busy_timeout:g} s,"
                " other changes are queued before it"
            )
        try:
            pause = 0.01
            while True:
                try:
                    with self.sessions.begin() as s:
                        return use_case(s)
                except SQLAlchemyError as exc:
                    if not journal.store_busy(exc):
                        raise
                    if time.monotonic() + pause >= deadline:
                        raise FlagStoreBusy(
                            f"database busy, retry: could not {what} within"
                            f" {self.busy_timeout:g} s, another connection holds the lock"
                            f" ({_first_line(exc)})"
                        ) from exc
                time.sleep(pause)
                pause = min(pause * 2, 0.25)
        finally:
            self._write_queue.release()

    def _replay_first(self) -> None:
        """Journaled rollbacks happened first: they go into the store before a new change.
        Busy: the change is refused as busy too. Unreachable: the change journals."""
        try:
            self.replay_journal(force=True)
        except SQLAlchemyError as exc:
            if journal.store_busy(exc):
                raise FlagStoreBusy(
                    f"database busy, retry: could not replay the rollback journal first"
                    f" ({_first_line(exc)})"
                ) from exc

    def toggle(
        self, name: str, enabled: bool, *, actor: str, method: str, reason: str = ""
    ) -> ToggleResult:
        if enabled and not self.rollback_mode and name in self.enable_refusals:
            # Refused before anything is written or journaled; rollback mode says its own no.
            raise EnableRefused(self.enable_refusals[name])
        self._replay_first()
        try:
            toggled = self._write(
                lambda s: service.set_flag(
                    s,
                    name=name,
                    enabled=enabled,
                    actor=actor,
                    method=method,
                    reason=reason,
                    rollback_mode=self.rollback_mode,
                ),
                "store the change",
            )
        except SQLAlchemyError as exc:
            if not journal.store_unreachable(exc):
                raise FlagStoreUnavailable(
                    f"could not store the change: {exc}".splitlines()[0]
                ) from exc
            self.last_error = problem = _first_line(exc)
            return self.offline.toggle(
                name,
                enabled,
                actor=actor,
                method=method,
                reason=reason,
                rollback_mode=self.rollback_mode,
                problem=problem,
                cause=exc,
            )
        change, version = toggled.change, toggled.version
        if not change.changed:  # nothing written: nothing to log or load
            return ToggleResult(
                self.builder.state(toggled.flag, []), change.old, change.new, version
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
        # The version moved, so this loads it unless the poller already did; committed
        # already, so a failed read back is the poller's to retry, not a failed change.
        with contextlib.suppress(FlagStoreUnavailable):
            self.refresh()
        # The answer is the change made, at its version: by now the served snapshot may hold
        # a later change to this flag by another request.
        return ToggleResult(self.builder.state(toggled.flag, []), change.old, change.new, version)

    def rollback(
        self, names: list[str] | None, *, actor: str, method: str, reason: str = ""
    ) -> RollbackResult:
        """Every flag (names=None) or the named ones to their rollback values, in one txn;
        journaled instead when the store is unreachable."""
        started = time.perf_counter()
        self._replay_first()
        try:
            outcome = self._write(
                lambda s: service.rollback_flags(
                    s, names=names, actor=actor, method=method, reason=reason
                ),
                "store the rollback",
            )
        except SQLAlchemyError as exc:
            if not journal.store_unreachable(exc):
                raise FlagStoreUnavailable(
                    f"could not store the rollback: {exc}".splitlines()[0]
                ) from exc
            self.last_error = problem = _first_line(exc)
            return self.offline.rollback(
                names,
                actor=actor,
                method=method,
                reason=reason,
                problem=problem,
                cause=exc,
                started=started,
            )
        changed = [c for c in outcome.changes if c.changed]
        unchanged = [c.name for c in outcome.changes if not c.changed]
        duration = (time.perf_counter() - started) * 1000
        message = rollback_message(names, [c.name for c in changed], outcome.record_id)
        if outcome.record_id is None:  # nothing changed and nothing recorded: nothing to log
            return RollbackResult(
                record_id=None,
                version=outcome.version,
                changed=[],
                unchanged=unchanged,
                requires_restart=[],
                verification=outcome.verification,
                duration_ms=round(duration, 2),
                nothing_changed=True,
                message=message,
            )
        scope = "emergency rollback" if names is None else "rollback"
        log_changes(
            [(c.name, c.old, c.new) for c in changed],
            f" by {actor} via {method} (version {outcome.version}, {scope} record"
            f" {outcome.record_id}){reason_suffix(reason)}",
        )
        self._publish_own(outcome, actor)
        duration = (time.perf_counter() - started) * 1000
        # A rollback that did not take is an error, for the log's readers and greps alike.
        log.log(
            logging.WARNING if outcome.verification == "success" else logging.ERROR,
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
            unchanged=unchanged,
            requires_restart=[c.name for c in changed if c.requires_restart],
            verification=outcome.verification,
            duration_ms=round(duration, 2),
            nothing_changed=not changed,
            message=message,
        )

    def replay_journal(self, *, force: bool = False) -> list[str]:
        """Put journaled rollbacks into the store (see Offline.replay)."""
        return self.offline.replay(self.sessions, force=force)
