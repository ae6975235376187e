"""The queue a process's flag writers wait in for their turn at the database, first come,
first served, each with its own deadline."""

from __future__ import annotations

import threading
from collections import deque


class WriteQueue:
    """A lock handed over in order of arrival (threading.Lock is not fair: under a crowd of
    writers one of them could lose every round until its wait bound ran out)."""

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._waiting: deque[threading.Event] = deque()
        self._held = False

    def acquire(self, timeout: float) -> bool:
        """Wait at most `timeout` seconds for this caller's turn; False when it did not come."""
        with self._mutex:
            if not self._held and not self._waiting:
                self._held = True
                return True
            turn = threading.Event()
            self._waiting.append(turn)
        if turn.wait(timeout):
            return True
        with self._mutex:
            if turn.is_set():  # handed over just as the wait ran out
                return True
            self._waiting.remove(turn)
            return False

    def release(self) -> None:
        """Hand the turn to the longest waiting caller, or free it."""
        with self._mutex:
            if self._waiting:
                self._waiting.popleft().set()  # still held: by the next caller now
            else:
                self._held = False
