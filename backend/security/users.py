"""Local users: create, change password or role, disable, authenticate (no FastAPI here)."""

from __future__ import annotations

import re
import secrets

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from backend.db.base import utcnow
from backend.security.errors import InvalidInput, UserExists, UserNotFound
from backend.security.models import User, WebSession
from backend.security.passwords import (
    MIN_LENGTH,
    burn_verification,
    hash_password,
    needs_rehash,
    verify_password,
)
from backend.security.tokens import Role

USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")


def check_username(username: str) -> str:
    if not USERNAME.fullmatch(username):
        raise InvalidInput(
            "a username is 1-64 characters: lower-case letters, digits, '.', '_' or '-'"
        )
    return username


def check_password(password: str) -> str:
    if len(password) < MIN_LENGTH:
        raise InvalidInput(f"a password needs at least {MIN_LENGTH} characters")
    if len(password) > 1024:
        raise InvalidInput("a password has at most 1024 characters")
    return password


def check_role(role: str) -> Role:
    try:
        return Role(role)
    except ValueError:
        raise InvalidInput(
            f"unknown role {role!r}: use one of {', '.join(r.value for r in Role)}"
        ) from None


def generate_password() -> str:
    return secrets.token_urlsafe(18)


def get_user(session: Session, *, username: str) -> User:
    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        raise UserNotFound(username)
    return user


def user_out(user: User) -> dict[str, object]:
    """A user as the API and the CLI show it (never the hash)."""
    return {
        "id": user.id,
        "username": user.username,
        "role": user.role,
        "disabled": user.disabled,
        "created_at": user.created_at.isoformat(),
        "last_login_at": user.last_login_at.isoformat() if user.last_login_at else None,
    }


def list_users(session: Session) -> list[User]:
    return list(session.scalars(select(User).order_by(User.username)))


def create_user(session: Session, *, username: str, password: str, role: str) -> User:
    """Add a user; the username must be free."""
    check_username(username)
    check_password(password)
    checked_role = check_role(role)
    if session.scalar(select(User.id).where(User.username == username)) is not None:
        raise UserExists(username)
    user = User(
        username=username,
        password_hash=hash_password(password),
        role=str(checked_role),
        disabled=False,
    )
    session.add(user)
    session.flush()
    return user


def end_sessions(session: Session, *, user_id: int, keep: str | None = None) -> int:
    """Delete the user's sessions (all, or all but the one whose id hash is `keep`)."""
    query = delete(WebSession).where(WebSession.user_id == user_id)
    if keep is not None:
        query = query.where(WebSession.id_hash != keep)
    return session.execute(query).rowcount  # type: ignore[attr-defined, no-any-return]


def set_password(session: Session, *, username: str, password: str) -> User:
    """Change a password and end the user's sessions."""
    user = get_user(session, username=username)
    user.password_hash = hash_password(check_password(password))
    user.password_changed_at = utcnow()
    end_sessions(session, user_id=user.id)
    return user


def _keep_an_admin(session: Session, user: User) -> None:
    # Nobody could manage users or tokens any more (the CLI still could, from the server).
    others = session.scalar(
        select(func.count())
        .select_from(User)
        .where(User.role == str(Role.ADMIN), User.disabled.is_(False), User.id != user.id)
    )
    if user.role == str(Role.ADMIN) and not user.disabled and not others:
        raise InvalidInput(f"{user.username!r} is the last enabled admin; make another first")


def set_role(session: Session, *, username: str, role: str) -> User:
    user = get_user(session, username=username)
    new_role = str(check_role(role))
    if new_role != user.role:
        _keep_an_admin(session, user)
    user.role = new_role
    return user


def set_disabled(session: Session, *, username: str, disabled: bool) -> User:
    """Disable (ending every session) or re-enable a user."""
    user = get_user(session, username=username)
    if disabled:
        _keep_an_admin(session, user)
    user.disabled = disabled
    if disabled:
        end_sessions(session, user_id=user.id)
    return user


def authenticate(session: Session, *, username: str, password: str) -> User | None:
    """The user if the password matches an enabled account; one Argon2 check in every case."""
    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        burn_verification(password)
        return None
    if not verify_password(user.password_hash, password) or user.disabled:
        return None
    if needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    user.last_login_at = utcnow()
    return user
