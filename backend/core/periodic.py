"""A daemon thread that runs one function every `interval` seconds until stopped."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger("pcm_ops_tools")


class Periodic:
    def __init__(self, name: str, interval: float, task: Callable[[], object]) -> None:
        self.name = name
        self.interval = interval
        self.task = task
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None

    def start(self) -> None:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.task()
            except Exception:  # one failure must not end the loop
                log.exception("background task %s failed", self.name)
