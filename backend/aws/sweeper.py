"""When `secure_credential_storage` comes on, move every session's credentials into sealed rows.

A background thread per process watches the flag snapshot (dict lookups) and, while the flag is
on, sweeps at start-up and after every new flag version, so an off → on switch is caught even
when it happens between two ticks, and no plaintext secret stays in web_sessions.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from sqlalchemy.orm import Session, sessionmaker

from backend.aws.credentials import seal_all_session_credentials
from backend.security.credentials_crypto import KeyRingSource

FLAG = "secure_credential_storage"
log = logging.getLogger("pcm_ops_tools.aws")


def sweep_sessions(sessions: sessionmaker[Session], keys: KeyRingSource) -> int:
    """One sweep in one transaction; the number of credentials sealed."""
    with sessions.begin() as db:
        moved = seal_all_session_credentials(db=db, ring=keys.load())
    if moved:
        log.info("sealed %d AWS credential(s) found in sessions (%s is on)", moved, FLAG)
    return moved


class CredentialSweeper:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        keys: KeyRingSource,
        flag: Callable[[str], bool],
        version: Callable[[], int],
        interval: float = 0.25,
    ) -> None:
        self.sessions = sessions
        self.keys = keys
        self.flag = flag
        self.version = version
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._swept_version: int | None = None
        self._failing = False  # logged once per failure spell, not once per tick

    def tick(self) -> None:
        version = self.version()
        if not self.flag(FLAG) or version == self._swept_version:
            return
        try:
            sweep_sessions(self.sessions, self.keys)
            self._swept_version = version
        except Exception as exc:  # tried again on the next tick
            if not self._failing:
                self._failing = True
                log.error(
                    "sweeping AWS credentials out of sessions failed (retrying every %.2f s,"
                    " logged again once it works): %s: %s",
                    self.interval,
                    type(exc).__name__,
                    str(exc).splitlines()[0] if str(exc) else "",
                )
            return
        if self._failing:
            self._failing = False
            log.info("sweeping AWS credentials out of sessions works again")

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.tick()

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._loop, name="aws-credential-sweeper", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
