"""When `secure_credential_storage` comes on, move every session's credentials into sealed rows.

A background thread per process watches the flag (a dict lookup) and sweeps on each off → on
transition and at start-up when it is on, so no plaintext secret stays in web_sessions.
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
        interval: float = 0.5,
    ) -> None:
        self.sessions = sessions
        self.keys = keys
        self.flag = flag
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._was_on = False
        self._pending = True  # sweep once at start-up if the flag is on

    def tick(self) -> None:
        on = self.flag(FLAG)
        if on and (self._pending or not self._was_on):
            try:
                sweep_sessions(self.sessions, self.keys)
                self._pending = False
            except Exception:
                self._pending = True  # try again on the next tick
                log.exception("sweeping AWS credentials out of sessions failed")
        self._was_on = on

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
