"""Request-level robustness against a real server: clients that go away mid-body are not server
errors, oversized and deeply nested bodies are refused, huge ids are bad input."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.conftest import Server

MIB = 1024 * 1024


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server for the module (start-up is the slow part)."""
    tmp = tmp_path_factory.mktemp("limits")
    with Server.running(tmp) as server:
        yield server


def counted(text: str, sample: str) -> float:
    """A counter summed over its series (0 before its first count)."""
    return sum(
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == sample
    )


def metrics(server: Server) -> tuple[float, float]:
    with server.client() as http:
        text = http.get("/metrics").text
    return counted(text, "pcm_http_requests_total"), counted(text, "pcm_http_server_errors_total")


def hang_up_mid_body(server: Server, path: str, content_type: str, head: bytes) -> None:
    """Declare a 1000-byte body, send part of it, and close the connection."""
    request = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {server.token()}\r\n"
        f"Content-Type: {content_type}\r\nContent-Length: 1000\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as conn:
        conn.sendall(request + head)
        time.sleep(0.1)  # let the server start reading the body before the client goes away


def server_logs(server: Server) -> str:
    logs = server.log_file.parent
    return "".join(p.read_text(errors="replace") for p in sorted(logs.glob("*.log")))


def test_client_disconnecting_mid_body__no_error_logged_and_no_5xx_counted(live: Server) -> None:
    # Given
    requests_before, errors_before = metrics(live)
    # When: clients hang up halfway through JSON and form bodies
    cases = [
        ("/api/feature-flags/toggle", "application/json", b'{"flag": "csrf_tok'),
        ("/ofrep/v1/evaluate/flags", "application/json", b'{"context": {"a'),
        ("/api/providers", "application/json", b'{"name": "x'),
        ("/login", "application/x-www-form-urlencoded", b"username=ada&pass"),
    ]
    for path, content_type, head in cases * 3:
        hang_up_mid_body(live, path, content_type, head)
    # Then: once the metrics have seen them, none is a server error
    deadline = time.monotonic() + 60
    while True:
        requests, errors = metrics(live)
        if requests >= requests_before + len(cases) * 3 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert requests >= requests_before + len(cases) * 3, "the metrics never saw the requests"
    assert errors == errors_before == 0
    text = server_logs(live)
    assert " ERROR " not in text and "Traceback" not in text, text[-3000:]
    assert "client disconnected" in text


def test_chunked_body_past_the_limit__413(live: Server) -> None:
    def pieces() -> Iterator[bytes]:
        yield b'{"context": {"pad": "'
        for _ in range(40):
            yield b"x" * (64 * 1024)
        yield b'"}}'

    with live.client() as http:
        r = http.post(
            "/ofrep/v1/evaluate/flags",
            content=pieces(),
            headers={"Content-Type": "application/json"},
        )
    assert r.status_code == 413, r.text


def test_ten_mib_body__413(live: Server) -> None:
    body = b'{"flag": "' + b"x" * (10 * MIB) + b'", "enabled": true}'
    with live.client() as http:
        try:
            r = http.post(
                "/api/feature-flags/toggle",
                content=body,
                headers={"Content-Type": "application/json"},
            )
        except httpx.WriteError:
            pytest.fail("the server closed the connection instead of answering 413")
    assert r.status_code == 413, r.text


def test_nested_50000_levels__422(live: Server) -> None:
    body = b'{"context":' + b"[" * 50_000 + b"]" * 50_000 + b"}"
    with live.client() as http:
        r = http.post(
            "/ofrep/v1/evaluate/flags/csrf_tokens_enabled",
            content=body,
            headers={"Content-Type": "application/json"},
        )
    assert r.status_code == 422, r.text


@pytest.mark.parametrize(
    "path", ["/records/99999999999999999999999", "/api/rollback-records/99999999999999999999999"]
)
def test_huge_id__422(live: Server, path: str) -> None:
    with live.client() as http:
        assert http.get(path).status_code == 422


def test_server_log_mentions_no_body(live: Server) -> None:
    # The bodies sent above (the 10 MiB pad, the nested context) never reach the log.
    text = server_logs(live)
    assert "x" * 64 not in text
    assert "[[[[[[[[" not in text
    assert Path(live.log_file).exists()
