"""A real server taken through sign-ins (good, bad, undecodable, oversized), token creation and
AWS credential storing, under both states of enhanced_error_handling and of
pydantic_v2_schemas; then no password, token or key may be found in the logs or in data/."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.aws.conftest import ACCOUNT, Emulator, emulator, moto_url
from tests.e2e.conftest import Server

__all__ = ["emulator", "moto_url"]

USER_PASSWORD = "Scan-User-Password-5c1e9d"
WRONG_PASSWORD = "Scan-Wrong-Password-77aa2b"
BODY_SECRET = "Scan-Undecodable-Body-3f2b8c"
OVERSIZED = "Scan-Oversized-Field-4d4d0a"
FORM_PASSWORD = "Scan-Form-Password-9e9e1f"
LONE_PASSWORD = "Scan-Lone-Password-1b1b3c"
FAKE_AWS_SECRET = "ScanFakeAwsSecretKey6a6a6a6a6a6a6a6a"


def exercise(server: Server, emulator: Emulator, provider_id: int, phase: str) -> list[str]:
    """Every request that carries a secret; returns the secrets the server made."""
    made = []
    with server.client() as admin, httpx.Client(base_url=server.url, timeout=30) as anon:
        for enhanced in (False, True):
            r = admin.post(
                "/api/feature-flags/toggle",
                json={"flag_name": "enhanced_error_handling", "enabled": enhanced},
            )
            assert r.status_code == 200, r.text
            login = "/api/auth/login"
            ghost = f"ghost-{phase}-{enhanced}".lower()
            assert (
                anon.post(login, json={"username": ghost, "password": WRONG_PASSWORD}).status_code
                == 401
            )
            bad = b'{"username": "scan", "password": "' + BODY_SECRET.encode() + b'\xff"}'
            r = anon.post(login, content=bad, headers={"Content-Type": "application/json"})
            assert 400 <= r.status_code < 500
            big = {"username": "scan", "password": OVERSIZED * 60}
            assert anon.post(login, json=big).status_code == 422
            assert anon.post(login, json={"password": LONE_PASSWORD}).status_code == 422
            form = {"username": ghost, "password": FORM_PASSWORD}
            assert anon.post("/login", data=form).status_code == 401
            # A signed-in browser stores its own AWS keys, with its CSRF token
            with httpx.Client(base_url=server.url, timeout=30) as browser:
                r = browser.post(login, json={"username": "scan", "password": USER_PASSWORD})
                assert r.status_code == 200, r.text
                csrf = {"X-CSRF-Token": r.json()["csrf_token"]}
                r = browser.put(
                    f"/api/aws/credentials/{provider_id}",
                    json=emulator.admin.body(),
                    headers=csrf,
                )
                assert r.status_code == 200, r.text
                fake = {
                    "access_key_id": "AKIASCANFAKE00000000",
                    "secret_access_key": FAKE_AWS_SECRET,
                }
                r = browser.put(f"/api/aws/credentials/{provider_id}", json=fake, headers=csrf)
                assert r.status_code < 500  # stored or refused, never logged
            r = admin.post(
                "/api/tokens", json={"name": f"scan-{phase}-{enhanced}", "role": "viewer"}
            )
            assert r.status_code in (200, 201), r.text
            made.append(r.json()["token"])
            r = admin.put(f"/api/aws/credentials/{provider_id}", json=emulator.admin.body())
            assert r.status_code == 200, r.text
    return made


def text_files(*roots: Path) -> dict[Path, str]:
    """Every file under `roots` that is text (a database file, with NUL bytes, is not)."""
    found = {}
    for root in roots:
        for path in root.rglob("*"):
            if path.is_file():
                raw = path.read_bytes()
                if b"\0" not in raw:
                    found[path] = raw.decode("utf-8", errors="replace")
    return found


def test_real_server__secrets_through_every_path__none_in_logs_or_data_files(
    server_dirs: Server, emulator: Emulator
) -> None:
    # Given a real server on the AWS emulator, with a user and a provider
    env = {"PCM_AWS_ENDPOINT_URL": emulator.url, "PCM_LOGIN_MAX_FAILURES_PER_ADDRESS": "100"}
    started = server_dirs.start(env)
    assert started.returncode == 0, started.stdout + started.stderr
    with server_dirs.client() as admin:
        r = admin.post(
            "/api/users", json={"username": "scan", "role": "operator", "password": USER_PASSWORD}
        )
        assert r.status_code == 201, r.text
        r = admin.post(
            "/api/providers",
            json={"name": "scan", "account_id": ACCOUNT, "default_region": "us-east-1"},
        )
        assert r.status_code == 201, r.text
        provider_id = int(r.json()["id"])
    # When every secret-carrying request is made with pydantic_v2_schemas on, then off
    made = exercise(server_dirs, emulator, provider_id, "v2")
    assert server_dirs.stop().returncode == 0
    restarted = server_dirs.start({**env, "FEATURE_FLAG_PYDANTIC_V2_SCHEMAS": "false"})
    assert restarted.returncode == 0, restarted.stdout + restarted.stderr
    made += exercise(server_dirs, emulator, provider_id, "v1")
    assert server_dirs.stop().returncode == 0
    # Then the log shows the requests...
    log = server_dirs.log_file.read_text()
    assert "POST /api/auth/login -> 401" in log and "POST /api/auth/login -> 422" in log
    assert "enhanced_error_handling changed" in log
    # ...and no file of logs/ or data/ holds any of the secrets
    secrets = [
        USER_PASSWORD,
        WRONG_PASSWORD,
        BODY_SECRET,
        OVERSIZED,
        FORM_PASSWORD,
        LONE_PASSWORD,
        FAKE_AWS_SECRET,
        emulator.admin.secret_access_key,
        *made,
    ]
    files = text_files(server_dirs.log_file.parent, server_dirs.data_dir)
    assert server_dirs.log_file in files and any(p.suffix == ".json" for p in files)
    leaks = {
        (str(path), secret[:12])
        for path, text in files.items()
        for secret in secrets
        if secret in text
    }
    assert leaks == set()
