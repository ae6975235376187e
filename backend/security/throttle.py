"""Login throttling per account and per client address, with a delay that grows.

After `max_failures` failed sign-ins on a key, each further failure blocks the key for
2, 4, 8, ... seconds (up to `max_delay`). Keys exist for unknown usernames too, so that the
answers never tell whether an account exists. A success clears the account's key only: one
good password must not reset an address that is guessing at others.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete
from sqlalchemy.orm import Session

from backend.db.base import utcnow
from backend.security.errors import LoginThrottled
from backend.security.models import LoginThrottle

# Failures older than this are forgotten.
_WINDOW = timedelta(hours=1)


def account_key(username: str) -> str:
    return f"user:{username.lower()[:150]}"


def address_key(address: str) -> str:
    return f"addr:{address[:150]}"


@dataclass(frozen=True)
class Throttle:
    max_failures: int
    max_failures_per_address: int
    max_delay: float

    def _limit(self, key: str) -> int:
        return self.max_failures_per_address if key.startswith("addr:") else self.max_failures

    def check(self, session: Session, *, keys: list[str]) -> None:
        """Raise LoginThrottled if any key is blocked now."""
        now = utcnow()
        waits = []
        for key in keys:
            row = session.get(LoginThrottle, key)
            if row is not None and row.blocked_until is not None and row.blocked_until > now:
                waits.append((row.blocked_until - now).total_seconds())
        if waits:
            raise LoginThrottled(max(1, math.ceil(max(waits))))

    def failed(self, session: Session, *, keys: list[str]) -> None:
        """Count a failure on every key, blocking those past their limit."""
        now = utcnow()
        for key in keys:
            row = session.get(LoginThrottle, key)
            if row is None:
                row = LoginThrottle(key=key, failures=0, last_failure_at=now)
                session.add(row)
            elif now - row.last_failure_at > _WINDOW:
                row.failures = 0
            row.failures += 1
            row.last_failure_at = now
            over = row.failures - self._limit(key)
            if over >= 0:
                row.blocked_until = now + timedelta(seconds=min(self.max_delay, 2.0 ** (over + 1)))

    def succeeded(self, session: Session, *, username: str) -> None:
        session.execute(delete(LoginThrottle).where(LoginThrottle.key == account_key(username)))
