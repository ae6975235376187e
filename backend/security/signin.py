"""Sign-in: throttling, one password check, a new session with its CSRF token; sign-out.

Every failure says the same thing ("invalid username or password") after the same work (one
Argon2 verification), whether the user exists, is disabled, or typed a wrong password.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker

from backend.security import csrf
from backend.security.flag import enabled
from backend.security.keys import LEGACY_COOKIE
from backend.security.sessions import SessionStore
from backend.security.throttle import Throttle, keys_for
from backend.security.users import authenticate

INVALID_CREDENTIALS = "invalid username or password"


@dataclass(frozen=True, slots=True)
class SignedIn:
    session_id: str
    username: str
    role: str
    csrf_token: str


def sign_in(
    *,
    sessions: sessionmaker[Session],
    store: SessionStore,
    throttle: Throttle,
    username: str,
    password: str,
    address: str,
    previous_session_id: str | None = None,
) -> SignedIn | None:
    """A fresh session for valid credentials, else None; LoginThrottled while blocked."""
    username = username.strip().lower()[:200]
    keys = keys_for(username, address)
    with sessions.begin() as s:
        throttle.check(s, keys=keys)
        user = authenticate(s, username=username, password=password)
        if user is None:
            throttle.failed(s, keys=keys)
            return None
        throttle.succeeded(s, username=username, address=address)
        user_id, role = user.id, user.role
    if previous_session_id:
        # A new id at every sign-in: a session id planted before sign-in is worth nothing.
        store.delete(previous_session_id)
    token = csrf.new_token()
    data: dict[str, object] = {csrf.SESSION_KEY: token}
    if not enabled("new_secret_key_handling"):
        data[LEGACY_COOKIE] = True  # its cookie is signed with the legacy key: see keys.py
    session_id = store.create(user_id=user_id, client_address=address, data=data)
    return SignedIn(session_id=session_id, username=username, role=role, csrf_token=token)
