"""A standard OpenFeature client reads our flags: the OpenFeature Python SDK with OpenFeature's
own OFREP provider, against a real server started by ./start.sh."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from openfeature import api
from openfeature.client import OpenFeatureClient
from openfeature.contrib.provider.ofrep import OFREPProvider
from openfeature.evaluation_context import EvaluationContext
from openfeature.exception import ErrorCode
from openfeature.flag_evaluation import Reason

from tests.e2e.conftest import Server

CSRF = "csrf_tokens_enabled"


@pytest.fixture
def openfeature(server: Server) -> Iterator[OpenFeatureClient]:
    token = server.token()
    provider = OFREPProvider(
        server.url, headers_factory=lambda: {"Authorization": f"Bearer {token}"}
    )
    api.set_provider(provider, domain="pcm-ops")
    try:
        yield api.get_client("pcm-ops")
    finally:
        api.clear_providers()


def test_an_openfeature_client_follows_toggles_and_the_emergency_rollback(
    server: Server, openfeature: OpenFeatureClient
) -> None:
    user = EvaluationContext(targeting_key="user-7", attributes={"team": "ops"})
    details = openfeature.get_boolean_details(CSRF, False, user)
    assert (details.value, details.variant, details.reason) == (True, "on", Reason.STATIC)
    assert details.flag_metadata["source"] == "stored"

    with server.client() as c:
        r = c.post("/api/feature-flags/toggle", json={"flag_name": CSRF, "enabled": False})
        assert r.status_code == 200
    assert openfeature.get_boolean_value(CSRF, True) is False

    with server.client() as c:
        c.post("/api/feature-flags/toggle", json={"flag_name": CSRF, "enabled": True})
        assert c.post("/api/feature-flags/emergency-rollback").status_code == 200
    for name in (CSRF, "xss_protection_enabled", "enhanced_error_handling"):
        assert openfeature.get_boolean_value(name, True) is False


def test_an_unknown_flag_gives_the_callers_default_and_flag_not_found(
    openfeature: OpenFeatureClient,
) -> None:
    details = openfeature.get_boolean_details("no_such_flag", True)
    assert (details.value, details.error_code) == (True, ErrorCode.FLAG_NOT_FOUND)


def test_a_bad_token_gives_the_callers_default_and_an_error(server: Server) -> None:
    provider = OFREPProvider(
        server.url, headers_factory=lambda: {"Authorization": "Bearer pcm_wrong"}
    )
    api.set_provider(provider, domain="pcm-ops-bad")
    try:
        details = api.get_client("pcm-ops-bad").get_boolean_details(CSRF, False)
    finally:
        api.clear_providers()
    assert details.value is False
    assert details.error_code == ErrorCode.GENERAL
    assert details.error_message == "unauthorized"
