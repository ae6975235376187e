"""An AWS credential set in memory; it never prints its secrets."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class AwsSecret:
    access_key_id: str
    secret_access_key: str = field(repr=False)
    session_token: str | None = field(default=None, repr=False)
    role_arn: str | None = None

    @property
    def hint(self) -> str:
        """The last four characters of the access key id, enough to recognise it."""
        return self.access_key_id[-4:]

    def secret_values(self) -> list[str]:
        """What must never reach a log, a record or a response."""
        return [v for v in (self.secret_access_key, self.session_token) if v]

    def to_session(self, stored_at: str) -> dict[str, Any]:
        return {
            "access_key_id": self.access_key_id,
            "secret_access_key": self.secret_access_key,
            "session_token": self.session_token,
            "role_arn": self.role_arn,
            "stored_at": stored_at,
        }

    @classmethod
    def from_session(cls, data: dict[str, Any]) -> AwsSecret:
        return cls(
            access_key_id=str(data["access_key_id"]),
            secret_access_key=str(data["secret_access_key"]),
            session_token=data.get("session_token") or None,
            role_arn=data.get("role_arn") or None,
        )


def scrub(text: str, secret: AwsSecret | None) -> str:
    """`text` with any secret value of `secret` masked (error messages can echo input)."""
    if secret is None:
        return text
    for value in secret.secret_values():
        text = text.replace(value, "***")
    return text
