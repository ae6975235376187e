"""Fixtures of the page tests: one user per role, and the AWS emulator of tests/aws (moto's
server, imported so that both directories use the same fixtures under the same names)."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session, sessionmaker

from backend.security.users import create_user
from tests.aws.conftest import aws_app, emulator, moto_url

__all__ = ["aws_app", "emulator", "moto_url"]
PASSWORD = "correct horse battery staple"


@pytest.fixture
def people(sessions: sessionmaker[Session]) -> None:
    """ada (admin), olga (operator) and vic (viewer), all with PASSWORD."""
    with sessions.begin() as s:
        create_user(s, username="ada", password=PASSWORD, role="admin")
        create_user(s, username="olga", password=PASSWORD, role="operator")
        create_user(s, username="vic", password=PASSWORD, role="viewer")
