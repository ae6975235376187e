"""Errors of the AWS side, one tree; backend/api/aws_errors.py maps them to HTTP statuses.

AwsError
├── NotFound: ProviderNotFound, CredentialsNotFound, ToolNotFound, RunNotFound
├── Conflict: ProviderNameTaken, ProviderDisabled, CredentialsNeedSession
└── CredentialsUnreadable   (stored secrets that the key ring cannot open)
"""

from __future__ import annotations


class AwsError(Exception):
    """Base of every error of the AWS side."""


class NotFound(AwsError):
    pass


class Conflict(AwsError):
    pass


class ProviderNotFound(NotFound):
    def __init__(self, provider_id: int) -> None:
        super().__init__(f"no provider with id {provider_id}")


class ProviderNameTaken(Conflict):
    def __init__(self, name: str) -> None:
        super().__init__(f"name: a provider named {name!r} already exists")


class ProviderDisabled(Conflict):
    def __init__(self, name: str) -> None:
        super().__init__(f"provider {name!r} is disabled; enable it to run tools against it")


class CredentialsNotFound(NotFound):
    def __init__(self, owner: str, provider: str) -> None:
        super().__init__(f"{owner} has no AWS credentials stored for provider {provider!r}")


class CredentialsNeedSession(Conflict):
    def __init__(self) -> None:
        super().__init__(
            "secure_credential_storage is off, so AWS credentials live in the sign-in session, "
            "and an API token has none: sign in, or enable secure_credential_storage"
        )


class CredentialsUnreadable(AwsError):
    def __init__(self, provider: str, reason: str) -> None:
        super().__init__(
            f"the stored AWS credentials for provider {provider!r} cannot be decrypted "
            f"({reason}); store them again"
        )


class ToolNotFound(NotFound):
    def __init__(self, name: str) -> None:
        super().__init__(f"no AWS tool named {name!r}")


class RunNotFound(NotFound):
    def __init__(self, run_id: int) -> None:
        super().__init__(f"no tool run with id {run_id}")
