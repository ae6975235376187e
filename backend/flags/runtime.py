"""The flag control plane of one process: snapshot refresh, propagation, and the use cases
that change flags (each one transaction, then logged and published at once)."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from sqlalchemy import Connection, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from backend.flags import service, snapshot
from backend.flags.errors import ConfigurationError, FlagNotFound, FlagStoreUnavailable
from backend.flags.models import FlagRow, FlagStoreRow
from backend.flags.snapshot import FlagState, Snapshot

log = logging.getLogger("pcm_ops_tools.flags")


@dataclass(frozen=True, slots=True)
class ToggleResult:
    flag: FlagState
    old: bool
    new: bool
    version: int


@dataclass(frozen=True, slots=True)
class RollbackResult:
    record_id: int
    version: int
    changed: list[dict[str, object]]
    unchanged: list[str]
    requires_restart: list[str]
    verification: str
    duration_ms: float


def _fmt(value: bool) -> str:
    return "enabled" if value else "disabled"


class FlagRuntime:
    """Owns this process's snapshot and every write to the flag store."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        rollback_mode: bool = False,
        overrides: Mapping[str, bool] | None = None,
        state_file: Path | None = None,
        poll_interval: float = 0.02,
        stale_after: float = 5.0,
    ) -> None:
        self.sessions = sessions
        self.rollback_mode = rollback_mode
        self.overrides = dict(overrides or {})
        self.state_file = state_file
        self.poll_interval = poll_interval
        self.stale_after = stale_after
        self.boot_values: dict[str, bool] = {}
        self.last_sync = time.monotonic()
        self.last_error: str | None = None
        self._refresh_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- reading the store ------------------------------------------------------------
    def _build(self, version: int, rows: list[FlagRow]) -> Snapshot:
        states: dict[str, FlagState] = {}
        for row in rows:
            if self.rollback_mode:
                value, source = row.rollback_value, "rollback_mode"
            elif row.name in self.overrides:
                value, source = self.overrides[row.name], "env"
            else:
                value, source = row.enabled, "stored"
            if row.requires_restart:
                boot = self.boot_values.setdefault(row.name, value)
                pending = boot != value
            else:
                pending = False
            states[row.name] = FlagState(
                name=row.name,
                enabled=value,
                stored_enabled=row.enabled,
                source=source,
                rollback_value=row.rollback_value,
                requires_restart=row.requires_restart,
                pending_restart=pending,
                description=row.description,
                phase=row.phase,
                risk=row.risk,
                updated_at=row.updated_at.isoformat(),
                updated_by=row.updated_by,
            )
        return Snapshot(
            version=version, rollback_mode=self.rollback_mode, flags=MappingProxyType(states)
        )

    def check_overrides(self, names: set[str]) -> None:
        unknown = sorted(set(self.overrides) - names)
        if unknown:
            shown = ", ".join(f"FEATURE_FLAG_{n.upper()}" for n in unknown)
            raise ConfigurationError(
                f"{shown} names no feature flag; known flags: {', '.join(sorted(names))}"
            )

    def refresh(self, *, force: bool = False) -> Snapshot:
        """Load the store if its version moved (or when forced) and publish the result."""
        with self._refresh_lock:
            try:
                with self.sessions() as s:
                    version = s.scalar(select(FlagStoreRow.version).where(FlagStoreRow.id == 1))
                    if version is None:
                        raise FlagStoreUnavailable(
                            "the flag store is not initialised: run backend/db/init_db.py"
                        )
                    current = snapshot.current()
                    if force or version != current.version or current.from_last_known_state:
                        rows = list(s.scalars(select(FlagRow).order_by(FlagRow.name)))
                        self.check_overrides({r.name for r in rows})
                        snap = self._build(version, rows)
                        snapshot.publish(snap)
                        self._save_last_known(snap)
            except SQLAlchemyError as exc:
                self.last_error = f"{type(exc).__name__}: {exc}".splitlines()[0]
                if snapshot.current().version < 0:
                    loaded = self._load_last_known()
                    if loaded is None:
                        raise FlagStoreUnavailable(
                            f"flag store unreachable and no last-known state: {self.last_error}"
                        ) from exc
                    snapshot.publish(loaded)
                raise FlagStoreUnavailable(f"flag store unreachable: {self.last_error}") from exc
            self.last_sync = time.monotonic()
            self.last_error = None
            return snapshot.current()

    def _save_last_known(self, snap: Snapshot) -> None:
        if self.state_file is None:
            return
        data = {
            "version": snap.version,
            "saved_at": time.time(),
            "flags": {
                n: {
                    "stored_enabled": f.stored_enabled,
                    "rollback_value": f.rollback_value,
                    "requires_restart": f.requires_restart,
                    "description": f.description,
                    "phase": f.phase,
                    "risk": f.risk,
                    "updated_at": f.updated_at,
                    "updated_by": f.updated_by,
                }
                for n, f in snap.flags.items()
            },
        }
        tmp = self.state_file.with_name(f".{self.state_file.name}.{os.getpid()}.tmp")
        try:
            tmp.write_text(json.dumps(data))
            os.replace(tmp, self.state_file)
        except OSError as exc:
            log.warning("could not write last-known flag state %s: %s", self.state_file, exc)

    def _load_last_known(self) -> Snapshot | None:
        if self.state_file is None or not self.state_file.exists():
            return None
        try:
            data = json.loads(self.state_file.read_text())
            from datetime import datetime

            rows = [
                FlagRow(
                    name=n,
                    enabled=f["stored_enabled"],
                    rollback_value=f["rollback_value"],
                    requires_restart=f["requires_restart"],
                    description=f["description"],
                    phase=f["phase"],
                    risk=f["risk"],
                    updated_at=datetime.fromisoformat(f["updated_at"]),
                    updated_by=f["updated_by"],
                )
                for n, f in data["flags"].items()
            ]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.error("last-known flag state %s is unreadable: %s", self.state_file, exc)
            return None
        snap = self._build(int(data["version"]), rows)
        log.warning(
            "Feature flag store unreachable: serving last-known state version %s", snap.version
        )
        return Snapshot(
            version=snap.version,
            rollback_mode=snap.rollback_mode,
            flags=snap.flags,
            from_last_known_state=True,
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

    def _poll(self) -> None:
        bind = self.sessions.kw["bind"]
        conn: Connection | None = None
        query = select(FlagStoreRow.version).where(FlagStoreRow.id == 1)
        while not self._stop.wait(self.poll_interval):
            try:
                if conn is None:
                    conn = bind.connect()
                version = conn.execute(query).scalar()
                conn.rollback()
                if (
                    version != snapshot.current().version
                    or snapshot.current().from_last_known_state
                ):
                    self.refresh()
                else:
                    self.last_sync = time.monotonic()
            except (SQLAlchemyError, FlagStoreUnavailable) as exc:
                self.last_error = str(exc).splitlines()[0]
                if conn is not None:
                    with contextlib.suppress(SQLAlchemyError):
                        conn.close()
                conn = None
                self._stop.wait(min(1.0, self.poll_interval * 25))
        if conn is not None:
            conn.close()

    def health(self) -> dict[str, Any]:
        snap = snapshot.current()
        since_sync = time.monotonic() - self.last_sync
        stale = since_sync > self.stale_after or snap.version < 0
        return {
            "status": "healthy" if not stale and self.last_error is None else "unhealthy",
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
            raise FlagStoreUnavailable(
                f"could not store the change: {exc}".splitlines()[0]
            ) from exc
        log.info(
            "Feature flag %s changed: %s -> %s by %s via %s (version %s)%s",
            name,
            _fmt(change.old),
            _fmt(change.new),
            actor,
            method,
            version,
            f" reason: {reason}" if reason else "",
        )
        self.refresh(force=True)
        return ToggleResult(self.get(name), change.old, change.new, version)

    def rollback(
        self, names: list[str] | None, *, actor: str, method: str, reason: str = ""
    ) -> RollbackResult:
        """Every flag (names=None) or the named ones to their rollback values, in one txn."""
        started = time.perf_counter()
        try:
            with self.sessions.begin() as s:
                outcome = service.rollback_flags(
                    s, names=names, actor=actor, method=method, reason=reason
                )
        except SQLAlchemyError as exc:
            raise FlagStoreUnavailable(
                f"could not store the rollback: {exc}".splitlines()[0]
            ) from exc
        changed = [c for c in outcome.changes if c.changed]
        scope = "emergency rollback" if names is None else "rollback"
        for c in changed:
            log.warning(
                "Feature flag %s changed: %s -> %s by %s via %s (version %s, %s record %s)%s",
                c.name,
                _fmt(c.old),
                _fmt(c.new),
                actor,
                method,
                outcome.version,
                scope,
                outcome.record_id,
                f" reason: {reason}" if reason else "",
            )
        self.refresh(force=True)
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
