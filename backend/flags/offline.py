"""Flags while the store is unreachable: the last-known-state file they are served from,
the rollback journal laid over it (only changes toward a flag's rollback value are journaled),
and the journal's replay into the store once it answers again (backend.flags.journal)."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from backend.flags import journal, last_known, snapshot
from backend.flags.builder import SnapshotBuilder
from backend.flags.errors import FlagNotFound, FlagStoreUnavailable, RollbackModeActive
from backend.flags.journal import JournalEntry
from backend.flags.outcomes import (
    RollbackResult,
    ToggleResult,
    fmt,
    journaled_note,
    log_changes,
    reason_suffix,
    rollback_message,
)
from backend.flags.snapshot import Snapshot

log = logging.getLogger("pcm_ops_tools.flags")


def _recent(path: Path, seconds: float = 2.0) -> bool:
    """Whether `path` was written in the last `seconds` (by another worker, say)."""
    try:
        return time.time() - path.stat().st_mtime < seconds
    except OSError:
        return False


class Offline:
    """This process's durable fallback: what it serves and journals while the store is down."""

    def __init__(
        self, builder: SnapshotBuilder, state_file: Path | None, journal_file: Path | None
    ) -> None:
        self.builder = builder
        self.state_file = state_file
        self.journal_file = journal_file
        # The journal as it was when laid over the served snapshot (None: no journal).
        self.journal_sig: tuple[int, int, int] | None = None
        self.saved_version: int | None = None  # in the state file, as far as we know
        self._unsaved_since: float | None = None  # when the served version first differed
        self._replay_retry_at = 0.0

    def signature(self) -> tuple[int, int, int] | None:
        return journal.signature(self.journal_file)

    def entries(self) -> list[JournalEntry]:
        return journal.read(self.journal_file)

    def save_state(self) -> None:
        """Write the served store state to the last-known-state file, unless it holds this
        version already (written by this process or another worker) or a newer one another
        worker wrote a moment ago. Workers take turns (a lock file beside it), so that a
        slower one never puts an older version over a newer one."""
        snap = snapshot.current()
        path = self.state_file
        if (
            snap.version == self.saved_version
            or path is None
            or snap.version < 0
            or snap.from_last_known_state
            or snap.journaled
        ):
            return
        try:
            with journal.locked(path):
                on_file = last_known.saved_version(path)
                if on_file is not None and on_file > snap.version and _recent(path):
                    return  # another worker is ahead of us; it keeps the file
                if on_file == snap.version or last_known.save(
                    path, snap.version, last_known.records_of(snap)
                ):
                    self.saved_version = snap.version
        except OSError as exc:  # the data directory went away: try again on the next save
            log.warning("could not write last-known flag state %s: %s", path, exc)

    def save_if_due(self, *, settled: float, within: float) -> None:
        """Save the served state once it has been served `settled` seconds (not while the
        request that made it still answers), and at the latest `within` seconds after it
        first differed from the file, so that the file keeps up under a stream of changes."""
        snap = snapshot.current()
        if snap.version == self.saved_version or snap.from_last_known_state or snap.journaled:
            self._unsaved_since = None
            return
        now = time.monotonic()
        if self._unsaved_since is None:
            self._unsaved_since = now
        if snap.age_seconds >= settled or now - self._unsaved_since >= within:
            self.save_state()
            self._unsaved_since = None

    def serve(self, *, force: bool = False) -> Snapshot | None:
        """With the store unreachable: publish the last-known state with the journal laid over
        it, when nothing is served yet or the journal changed. None: nothing can be served."""
        sig = journal.signature(self.journal_file)
        served = snapshot.current()
        if not force and served.version >= 0 and sig == self.journal_sig:
            return served
        loaded = self._load_last_known()
        if loaded is None:
            return None if served.version < 0 else served
        snapshot.publish(loaded)
        self.journal_sig = sig
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

    def _base(self, problem: str, cause: SQLAlchemyError) -> Snapshot:
        """The state a journaled change applies to; refuses when nothing durable backs it."""
        if self.journal_file is None or self.state_file is None:
            raise FlagStoreUnavailable(f"could not store the change: {problem}") from cause
        served = snapshot.current()
        on_file = last_known.saved_version(self.state_file)
        if (
            served.version >= 0
            and not served.from_last_known_state
            and not served.journaled
            and (on_file is None or on_file < served.version)
        ):
            # The journal must lie over a durable state, and the freshest this process knows:
            # the file may lag the store by the poller's save delay.
            try:
                with journal.locked(self.state_file):
                    if (last_known.saved_version(self.state_file) or -1) < served.version:
                        last_known.save(
                            self.state_file, served.version, last_known.records_of(served)
                        )
            except OSError as exc:  # refused below unless an older file is there to lie over
                log.warning("could not write last-known flag state %s: %s", self.state_file, exc)
        loaded = self.serve()
        if loaded is None or not self.state_file.exists():
            raise FlagStoreUnavailable(
                f"flag store unreachable and no last-known state to journal over: {problem}"
            ) from cause
        return loaded

    def _journal(self, entry: JournalEntry) -> Snapshot:
        assert self.journal_file is not None
        journal.append(self.journal_file, entry)
        published = self.serve(force=True)
        assert published is not None
        return published

    def toggle(
        self,
        name: str,
        enabled: bool,
        *,
        actor: str,
        method: str,
        reason: str,
        rollback_mode: bool,
        problem: str,
        cause: SQLAlchemyError,
    ) -> ToggleResult:
        base = self._base(problem, cause)
        flag = base.flags.get(name)
        if flag is None:
            raise FlagNotFound(name)
        if rollback_mode and enabled:
            raise RollbackModeActive(
                f"cannot enable {name!r}: rollback mode is on"
                " (FEATURE_FLAG_ROLLBACK_MODE_ENABLED=true)"
            )
        if enabled != flag.rollback_value:
            raise FlagStoreUnavailable(
                f"cannot {'enable' if enabled else 'disable'} {name!r} while the database is"
                f" unreachable: only changes to a flag's rollback value are journaled"
                f" ({problem})"
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
        return ToggleResult(
            snap.flags[name],
            flag.stored_enabled,
            enabled,
            snap.version,
            entry.id,
            journaled_note(snap.version, [name]),
        )

    def rollback(
        self,
        names: list[str] | None,
        *,
        actor: str,
        method: str,
        reason: str,
        problem: str,
        cause: SQLAlchemyError,
        started: float,
    ) -> RollbackResult:
        base = self._base(problem, cause)
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
            "Feature flag %s journaled: %d changed in last-known state version %s, entry %s"
            " (applies to %s when replayed), verification %s, %.1f ms",
            what,
            len(changed),
            snap.version,
            entry.id,
            "every flag" if names is None else ", ".join(scope),
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
            last_known_version=snap.version,
            note=journaled_note(snap.version, names),
            # Worked out on the last-known state, which may be older than the database: the
            # entry is journaled (and applies when replayed) all the same.
            nothing_changed=not changed,
            message=rollback_message(names, [f.name for f in changed], None, journal_id=entry.id),
        )

    def replay(self, sessions: sessionmaker[Session], *, force: bool = False) -> list[str]:
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
                with sessions.begin() as s:
                    applied = journal.replay(s, entries)
                if path.exists():
                    archived = journal.archive(path)
                    log.warning(
                        "Feature flag journal replayed: %d of %d entries applied (%s), moved to %s",
                        len(applied),
                        len(entries),
                        ", ".join(f"{r.entry.id} as record {r.record_id}" for r in applied)
                        or "none new",
                        archived.name,
                    )
                for r in applied:
                    for skipped in r.superseded:
                        log.warning(
                            "Feature flag journal entry %s not applied to %s (record %s)",
                            r.entry.id,
                            skipped.describe(),
                            r.record_id,
                        )
        except SQLAlchemyError:
            self._replay_retry_at = time.monotonic() + 0.2
            raise
        except Exception:
            # Never let a replay problem stop the poller or a rollback: retry in a second.
            self._replay_retry_at = time.monotonic() + 1.0
            log.exception("could not replay the rollback journal %s", path)
            return []
        return [r.entry.id for r in applied]
