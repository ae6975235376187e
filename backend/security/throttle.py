"""Login throttling per account-and-address and per address, with a delay that grows.

After `max_failures` failed sign-ins of one account from one address, each further failure
blocks that pair for 2, 4, 8, ... seconds (up to `max_delay`); after
`max_failures_per_address` failures from one address, for any accounts, the address is blocked
the same way. While a key is blocked even the right password is refused (else the block would
tell a guesser when they are right). No key is the account alone: someone guessing at the
admin from their own address blocks only themselves, and the admin still signs in from theirs
(`pcm-ops user unlock <name>` clears an account's blocks, `--address` an address's, for when
both come through one address). Keys exist for unknown usernames too, so that the answers never
tell whether an account exists. A success clears its own pair only: one good password must not
reset an address that is guessing at others.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, or_
from sqlalchemy.orm import Session

from backend.db.base import utcnow
from backend.security.errors import LoginThrottled
from backend.security.models import LoginThrottle

# Failures older than this are forgotten.
_WINDOW = timedelta(hours=1)
_ADDRESS = "addr:"
_PAIR = "pair:"
# The key of the account alone, used before blocks were per address (rows may remain).
_LEGACY_ACCOUNT = "user:"


def _name(username: str) -> str:
    return username.lower()[:100]


def pair_key(username: str, address: str) -> str:
    """One account signing in from one address (the username has no "|", see users.py)."""
    return f"{_PAIR}{_name(username)}|{address[:90]}"


def address_key(address: str) -> str:
    return f"{_ADDRESS}{address[:150]}"


def keys_for(username: str, address: str) -> list[str]:
    return [pair_key(username, address), address_key(address)]


@dataclass(frozen=True)
class Throttle:
    max_failures: int
    max_failures_per_address: int
    max_delay: float

    def _limit(self, key: str) -> int:
        return self.max_failures_per_address if key.startswith(_ADDRESS) else self.max_failures

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

    def succeeded(self, session: Session, *, username: str, address: str) -> None:
        session.execute(
            delete(LoginThrottle).where(LoginThrottle.key == pair_key(username, address))
        )


def unlock_account(session: Session, *, username: str) -> int:
    """Clear every block and failure count of `username`, from any address; how many."""
    result = session.execute(
        delete(LoginThrottle).where(
            or_(
                LoginThrottle.key.startswith(f"{_PAIR}{_name(username)}|", autoescape=True),
                LoginThrottle.key == f"{_LEGACY_ACCOUNT}{username.lower()[:150]}",
            )
        )
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def unlock_address(session: Session, *, address: str) -> int:
    """Clear the block and failure count of one client address; how many (0 or 1)."""
    result = session.execute(delete(LoginThrottle).where(LoginThrottle.key == address_key(address)))
    return int(result.rowcount)  # type: ignore[attr-defined]
