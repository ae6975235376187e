"""boto3 clients for one credential set: configurable endpoint, bounded timeouts and retries."""

from __future__ import annotations

import threading
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)

from backend.aws.secrets import AwsSecret, scrub
from backend.core.config import Settings

# The region STS and IAM are called in when no other is given.
HOME_REGION = "us-east-1"


class AwsConnector:
    """Clients of one caller's credentials (after assuming its role, if any); thread-safe."""

    def __init__(self, settings: Settings, secret: AwsSecret) -> None:
        self.secret = secret
        self.endpoint_url = settings.aws_endpoint_url
        self.config = Config(
            connect_timeout=settings.aws_connect_timeout,
            read_timeout=settings.aws_read_timeout,
            retries={"max_attempts": settings.aws_max_attempts, "mode": "standard"},
            max_pool_connections=max(10, settings.aws_max_workers * 2),
        )
        self._lock = threading.Lock()
        self._clients: dict[tuple[str, str], Any] = {}
        self._session = self._base_session(secret)
        self._assumed = False

    @staticmethod
    def _base_session(secret: AwsSecret) -> boto3.session.Session:
        return boto3.session.Session(
            aws_access_key_id=secret.access_key_id,
            aws_secret_access_key=secret.secret_access_key,
            aws_session_token=secret.session_token,
        )

    def _assume_role(self) -> None:
        if self._assumed or not self.secret.role_arn:
            return
        sts = self._session.client(
            "sts", region_name=HOME_REGION, endpoint_url=self.endpoint_url, config=self.config
        )
        creds = sts.assume_role(
            RoleArn=self.secret.role_arn, RoleSessionName="pcm-ops-tools", DurationSeconds=900
        )["Credentials"]
        self._session = boto3.session.Session(
            aws_access_key_id=creds["AccessKeyId"],
            aws_secret_access_key=creds["SecretAccessKey"],
            aws_session_token=creds["SessionToken"],
        )
        self._assumed = True

    def client(self, service: str, region: str = HOME_REGION) -> Any:
        """A client of `service` in `region` (boto3 sessions are not thread-safe; clients are)."""
        with self._lock:
            self._assume_role()
            key = (service, region)
            if key not in self._clients:
                self._clients[key] = self._session.client(
                    service, region_name=region, endpoint_url=self.endpoint_url, config=self.config
                )
            return self._clients[key]

    def describe_error(self, exc: Exception) -> str:
        """A short message for `exc`, with no secret in it."""
        return scrub(describe_error(exc), self.secret)


def describe_error(exc: Exception) -> str:
    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        return f"{err.get('Code', 'Error')}: {err.get('Message', '')}".strip()
    if isinstance(exc, (ConnectTimeoutError, EndpointConnectionError)):
        return f"cannot reach the AWS endpoint: {exc}"
    if isinstance(exc, ReadTimeoutError):
        return f"the AWS endpoint did not answer in time: {exc}"
    if isinstance(exc, BotoCoreError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"
