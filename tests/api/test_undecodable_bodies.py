"""Bodies that are not UTF-8, or not valid, are a 4xx under every flag state, and neither the
log nor the answer carries them: a password in a bad body stays out of both."""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import BaseModel, Field, ValidationError

from backend.core.config import Settings
from backend.core.log import configure_logging

SECRET = "Hunter2-Undecodable-Secret-7f3a"
BAD_BODY = b'{"username": "admin", "password": "' + SECRET.encode() + b'\xff\xfe"}'
FLAG_STATES = [
    pytest.param(enhanced, v2, id=f"enhanced={enhanced}-v2={v2}")
    for enhanced in (False, True)
    for v2 in (False, True)
]


def start(open_client: Callable[..., TestClient], enhanced: bool, v2: bool) -> TestClient:
    return open_client(
        flag_overrides={"enhanced_error_handling": enhanced, "pydantic_v2_schemas": v2}
    )


def write_routes(client: TestClient) -> dict[tuple[str, str], bool]:
    """Every API route that writes, path parameters filled in: whether it declares a body."""
    paths = client.app.openapi()["paths"]  # type: ignore[attr-defined]
    return {
        (method.upper(), re.sub(r"\{[^}]+\}", "1", path)): "requestBody" in operation
        for path, operations in paths.items()
        for method, operation in operations.items()
        if method in ("post", "put", "patch")
    }


@pytest.mark.parametrize(("enhanced", "v2"), FLAG_STATES)
def test_every_json_endpoint__non_utf8_body__4xx_and_nothing_logged(
    open_client: Callable[..., TestClient],
    settings: Settings,
    admin_headers: dict[str, str],
    enhanced: bool,
    v2: bool,
) -> None:
    # Given the app under this flag state
    client = start(open_client, enhanced, v2)
    routes = write_routes(client)
    assert routes[("POST", "/api/auth/login")] and sum(routes.values()) >= 12
    # When every writing endpoint gets a body that is not UTF-8 (signed in, and not)
    answers = {}
    for method, path in routes:
        for headers in ({}, admin_headers):
            r = client.request(
                method,
                path,
                content=BAD_BODY,
                headers={**headers, "Content-Type": "application/json"},
            )
            # Then the answer never echoes the body, and is a 4xx where a body is expected
            assert SECRET not in r.text, (method, path)
            if routes[(method, path)] or r.status_code >= 500:
                answers[(method, path, bool(headers))] = r.status_code
    assert {k: v for k, v in answers.items() if not 400 <= v < 500} == {}
    # And the log has the requests but none of the body
    text = settings.log_file.read_text()
    assert "POST /api/auth/login -> 422" in text
    assert SECRET not in text and "\\xff" not in text


@pytest.mark.parametrize(("enhanced", "v2"), FLAG_STATES)
@pytest.mark.parametrize(
    "body",
    [
        {"password": SECRET},  # username missing: the error's input is the whole object
        {"username": "admin", "password": SECRET * 40},  # too long
        {"username": ["admin"], "password": SECRET},
        {"username": "admin", "password": {"nested": SECRET}},
    ],
    ids=["missing-field", "too-long", "wrong-type-beside", "wrong-type"],
)
def test_login__invalid_body_with_a_password__password_neither_echoed_nor_logged(
    open_client: Callable[..., TestClient],
    settings: Settings,
    enhanced: bool,
    v2: bool,
    body: dict[str, object],
) -> None:
    client = start(open_client, enhanced, v2)
    r = client.post("/api/auth/login", json=body)
    assert r.status_code == 422
    assert SECRET not in r.text
    assert SECRET not in settings.log_file.read_text()


def test_validation_errors_off__non_secret_input__still_echoed_as_the_framework_does(
    open_client: Callable[..., TestClient], admin_headers: dict[str, str]
) -> None:
    # The rollback state keeps FastAPI's shape, inputs included where they are not secret.
    client = start(open_client, False, True)
    r = client.post(
        "/api/feature-flags/toggle",
        json={"flag_name": "enhanced_error_handling", "enabled": "sometimes"},
        headers=admin_headers,
    )
    assert r.status_code == 422
    (error,) = r.json()["detail"]
    assert error["loc"] == ["body", "enabled"] and error["input"] == "sometimes"


def test_form_login__non_utf8_body__4xx_and_nothing_logged(
    client: TestClient, settings: Settings
) -> None:
    r = client.post(
        "/login",
        content=b"username=admin&password=" + SECRET.encode() + b"%ff%fe\xff",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert r.status_code < 500 and SECRET not in r.text
    assert SECRET not in settings.log_file.read_text()


class Login(BaseModel):
    password: str = Field(max_length=4)


def test_log_formatter__validation_error_in_a_traceback__inputs_left_out(tmp_path: Path) -> None:
    # Given the app's log set up, and a validation error raised while handling another
    log_file = tmp_path / "logs" / "app.log"
    configure_logging(log_file)
    logger = logging.getLogger("pcm_ops_tools.test")
    # When it is logged with its traceback
    try:
        try:
            Login.model_validate({"password": SECRET})
        except ValidationError as exc:
            raise RuntimeError("handler failed") from exc
    except RuntimeError:
        logger.exception("request failed")
    # Then the log tells where and what, never the input
    text = log_file.read_text()
    assert "password: String should have at most 4 characters" in text
    assert "The above exception was the direct cause" in text
    assert "RuntimeError: handler failed" in text and "Traceback" in text
    assert SECRET not in text


def test_uvicorn_console_handler__validation_error_traceback__inputs_left_out(
    tmp_path: Path,
) -> None:
    # Given uvicorn's console handler (server.console.log), with its own formatter
    console = io.StringIO()
    handler = logging.StreamHandler(console)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    uvicorn_logger = logging.getLogger("uvicorn")
    uvicorn_logger.addHandler(handler)
    try:
        configure_logging(tmp_path / "logs" / "app.log")
        # When uvicorn logs an exception whose text would hold an input
        try:
            Login.model_validate({"password": SECRET})
        except ValidationError:
            logging.getLogger("uvicorn.error").exception("Exception in ASGI application")
    finally:
        uvicorn_logger.removeHandler(handler)
    # Then its console line has the traceback without the input
    text = console.getvalue()
    assert "Exception in ASGI application" in text and "Traceback" in text
    assert "password: String should have at most 4 characters" in text
    assert SECRET not in text
