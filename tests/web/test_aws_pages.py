"""The providers, credentials and AWS tools pages in-process, against moto's server: access per
role, escaping, CSRF, validation messages beside their fields, and the API's downloads."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.aws.conftest import ACCOUNT, Emulator
from tests.web.test_pages import csrf_of, sign_in

PAGES = ("/providers", "/providers/new", "/providers/1/edit", "/credentials", "/tools")
PROVIDER = {
    "name": "prod",
    "account_id": ACCOUNT,
    "default_region": "us-east-1",
    "regions": ["us-east-1", "eu-west-1"],
    "enabled": "yes",
    "description": "production",
}


@pytest.fixture
def web(aws_app: Callable[..., TestClient], people: None) -> TestClient:
    return aws_app()


@pytest.fixture
def provider(web: TestClient, admin_headers: dict[str, str]) -> dict[str, Any]:
    body = {**PROVIDER, "enabled": True}
    r = web.post("/api/providers", json=body, headers=admin_headers)
    assert r.status_code == 201, r.text
    return dict(r.json())


def store_keys(web: TestClient, provider_id: int, keys: dict[str, str]) -> Any:
    token = csrf_of(web.get("/credentials").text)
    return web.post(f"/credentials/{provider_id}", data={**keys, "csrf_token": token})


def test_pages_send_anonymous_callers_to_sign_in(web: TestClient) -> None:
    for path in (*PAGES, "/tools/whoami", "/tools/runs/1"):
        r = web.get(path, follow_redirects=False)
        assert r.status_code == 303, path
        assert r.headers["location"] == f"/login?next={path}"


def test_viewers_read_providers_but_only_admins_change_them(
    web: TestClient, provider: dict[str, Any]
) -> None:
    for user in ("vic", "olga"):
        sign_in(web, user)
        html = web.get("/providers").text
        assert "prod" in html and ACCOUNT in html and "us-east-1, eu-west-1" in html
        assert "/providers/new" not in html and "/delete" not in html
        assert 'href="/admin/users"' not in html  # admin links only for admins
        token = csrf_of(html)
        assert web.get("/providers/new").status_code == 403
        assert web.get(f"/providers/{provider['id']}/edit").status_code == 403
        r = web.post("/providers", data={**PROVIDER, "name": "x", "csrf_token": token})
        assert r.status_code == 403
        r = web.post(f"/providers/{provider['id']}/delete", data={"csrf_token": token})
        assert r.status_code == 403
    sign_in(web, "ada")
    html = web.get("/providers").text
    assert "/providers/new" in html and 'href="/admin/users"' in html


def test_admin_adds_edits_and_deletes_a_provider(web: TestClient) -> None:
    sign_in(web, "ada")
    token = csrf_of(web.get("/providers/new").text)
    added = web.post("/providers", data={**PROVIDER, "csrf_token": token})
    assert added.status_code == 200 and "Provider prod added" in added.text
    listed = web.get("/api/providers").json()["items"]
    assert [(p["name"], p["regions"]) for p in listed] == [("prod", ["us-east-1", "eu-west-1"])]
    pid = listed[0]["id"]

    form = web.get(f"/providers/{pid}/edit").text
    assert 'value="prod"' in form and f'value="{ACCOUNT}"' in form
    assert re.search(r'value="eu-west-1"\s+checked', form)
    edited = web.post(
        f"/providers/{pid}",
        data={**PROVIDER, "name": "production", "regions": ["ap-southeast-2"], "csrf_token": token},
    )
    assert edited.status_code == 200 and "Provider production saved" in edited.text
    after = web.get(f"/api/providers/{pid}").json()
    assert after["name"] == "production" and after["enabled"] is True
    assert after["regions"] == ["us-east-1", "ap-southeast-2"]

    unticked = {k: v for k, v in PROVIDER.items() if k != "enabled"}
    web.post(f"/providers/{pid}", data={**unticked, "csrf_token": token})
    assert web.get(f"/api/providers/{pid}").json()["enabled"] is False

    deleted = web.post(f"/providers/{pid}/delete", data={"csrf_token": token})
    assert deleted.status_code == 200 and "Provider deleted" in deleted.text
    assert web.get("/api/providers").json()["total"] == 0
    gone = web.post(f"/providers/{pid}/delete", data={"csrf_token": token})
    assert gone.status_code == 404 and f"no provider with id {pid}" in gone.text


def test_provider_validation_messages_sit_beside_their_fields(
    web: TestClient, provider: dict[str, Any]
) -> None:
    sign_in(web, "ada")
    token = csrf_of(web.get("/providers/new").text)
    bad = web.post(
        "/providers",
        data={
            "name": "<script>alert(1)</script>",
            "account_id": "12345",
            "default_region": "moon-1",
            "regions": ["eu-west-1", "mars-2"],
            "description": "x" * 2001,
            "csrf_token": token,
        },
    )
    assert bad.status_code == 422
    html = bad.text
    errors = dict(
        re.findall(r'<span class="field-error" id="([a-z_]+)-error">([^<]*)</span>', html)
    )
    assert set(errors) == {"name", "account_id", "default_region", "regions", "description"}
    assert "starting with a letter or digit" in errors["name"]
    assert errors["account_id"] == "an AWS account id is exactly 12 digits"
    assert "&#39;moon-1&#39; is not an AWS region" in errors["default_region"]
    assert "mars-2" in errors["regions"]
    # What was typed comes back, escaped.
    assert "<script>alert(1)</script>" not in html
    assert 'value="&lt;script&gt;alert(1)&lt;/script&gt;"' in html
    assert 'aria-describedby="name-error"' in html

    taken = web.post("/providers", data={**PROVIDER, "csrf_token": token})
    assert taken.status_code == 409
    assert re.search(r'id="name-error">a provider named &#39;prod&#39; already exists', taken.text)


def test_provider_text_is_escaped_in_the_list(
    web: TestClient, admin_headers: dict[str, str]
) -> None:
    body = {**PROVIDER, "enabled": True, "description": "<script>alert(1)</script>"}
    assert web.post("/api/providers", json=body, headers=admin_headers).status_code == 201
    sign_in(web, "vic")
    html = web.get("/providers").text
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_forms_without_csrf_token_are_refused(
    web: TestClient, provider: dict[str, Any], emulator: Emulator
) -> None:
    sign_in(web, "ada")
    pid = provider["id"]
    for path, data in (
        ("/providers", PROVIDER),
        (f"/providers/{pid}", PROVIDER),
        (f"/providers/{pid}/delete", {}),
        (f"/credentials/{pid}", emulator.admin.body()),
        (f"/credentials/{pid}/delete", {}),
        ("/tools/whoami/runs", {"provider_id": str(pid)}),
    ):
        r = web.post(path, data=data)
        assert r.status_code == 403, path
        assert "CSRF" in r.text, path
    assert web.get("/api/providers").json()["items"][0]["name"] == "prod"
    assert web.get("/api/aws/credentials").json()["total"] == 0


def test_credentials_stored_masked_checked_and_deleted(
    web: TestClient, provider: dict[str, Any], emulator: Emulator
) -> None:
    sign_in(web, "vic")  # credentials are each caller's own: viewers store theirs too
    pid = provider["id"]
    assert "Nothing stored for this provider" in web.get("/credentials").text

    bad = store_keys(
        web,
        pid,
        {"access_key_id": "akia-lower", "secret_access_key": "short", "role_arn": "arn:nope"},
    )
    assert bad.status_code == 422
    assert re.search(r'id="access_key_id-\d+-error">16 to 128 upper-case', bad.text)
    assert re.search(r'id="secret_access_key-\d+-error">[^<]*16 characters', bad.text)
    assert re.search(r'id="role_arn-\d+-error">a role ARN', bad.text)
    assert 'value="akia-lower"' in bad.text and "short" not in bad.text.split("<main")[1]

    keys = emulator.admin
    stored = store_keys(web, pid, keys.body())
    assert stored.status_code == 200 and "Credentials for prod stored" in stored.text
    assert f"****{keys.access_key_id[-4:]}" in stored.text
    assert keys.access_key_id not in stored.text and keys.secret_access_key not in stored.text

    checked = web.get(f"/credentials?check={pid}").text
    block = checked.split(f'id="check-{pid}"')[1].split("</div>")[0]
    assert "<dd>yes</dd>" in block and f"<dd>{ACCOUNT}</dd>" in block
    assert "user/pcm-admin" in block and "<dd>none</dd>" in block

    wrong = store_keys(
        web, pid, {"access_key_id": "AKIA" + "X" * 16, "secret_access_key": "y" * 40}
    )
    assert "Credentials for prod stored" in wrong.text
    failed = web.get(f"/credentials?check={pid}").text.split(f'id="check-{pid}"')[1]
    assert "<dd>no</dd>" in failed and "InvalidClientTokenId" in failed

    token = csrf_of(checked)
    deleted = web.post(f"/credentials/{pid}/delete", data={"csrf_token": token})
    assert "Credentials for prod deleted" in deleted.text
    assert web.get("/api/aws/credentials").json()["total"] == 0
    again = web.post(f"/credentials/{pid}/delete", data={"csrf_token": token})
    assert again.status_code == 404
    none = web.get(f"/credentials?check={pid}").text.split(f'id="check-{pid}"')[1]
    assert "no AWS credentials stored" in none


def test_operator_runs_a_tool_and_downloads_the_table(
    web: TestClient, provider: dict[str, Any], emulator: Emulator
) -> None:
    pid = provider["id"]
    sign_in(web, "olga")
    store_keys(web, pid, emulator.admin.body())
    catalog = web.get("/tools").text
    assert 'href="/tools/whoami"' in catalog and "No runs yet" in catalog
    form = web.get("/tools/whoami").text
    assert 'action="/tools/whoami/runs"' in form
    token = csrf_of(form)

    r = web.post("/tools/whoami/runs", data={"provider_id": str(pid), "csrf_token": token})
    assert r.status_code == 200 and re.search(r"/tools/runs/\d+$", str(r.url))
    run_id = int(str(r.url).rsplit("/", 1)[1])
    assert "ok: 1 row(s) from provider prod" in r.text
    result = r.text.split('id="result"')[1]
    assert ACCOUNT in result and "user/pcm-admin" in result
    assert f'href="/api/aws/runs/{run_id}/download?format=csv"' in r.text
    assert f'href="/api/aws/runs/{run_id}/download?format=json"' in r.text

    download = web.get(f"/api/aws/runs/{run_id}/download?format=csv")
    assert "attachment" in download.headers["content-disposition"]
    [row] = list(csv.DictReader(io.StringIO(download.text)))
    assert row["account"] == ACCOUNT
    assert web.get(f"/api/aws/runs/{run_id}/download?format=json").json()["id"] == run_id
    assert f'href="/tools/runs/{run_id}"' in web.get("/tools").text


def test_run_form_errors_sit_beside_their_fields(
    web: TestClient, provider: dict[str, Any], emulator: Emulator
) -> None:
    pid = provider["id"]
    sign_in(web, "olga")
    token = csrf_of(web.get("/tools/iam_old_access_keys").text)
    no_keys = web.post("/tools/whoami/runs", data={"provider_id": str(pid), "csrf_token": token})
    assert no_keys.status_code == 404
    assert re.search(r'id="provider_id-error">[^<]*no AWS credentials stored', no_keys.text)

    store_keys(web, pid, emulator.admin.body())
    bad_days = web.post(
        "/tools/iam_old_access_keys/runs",
        data={"provider_id": str(pid), "p_older_than_days": "-5", "csrf_token": token},
    )
    assert bad_days.status_code == 422
    assert re.search(r'id="older_than_days-error">[^<]*greater than or equal to 0', bad_days.text)
    assert 'value="-5"' in bad_days.text
    bad_ports = web.post(
        "/tools/open_security_groups/runs",
        data={"provider_id": str(pid), "p_ports": "22, http", "csrf_token": token},
    )
    assert bad_ports.status_code == 422 and 'id="ports-error"' in bad_ports.text
    ok = web.post(
        "/tools/ec2_instances/runs",
        data={"provider_id": str(pid), "p_states": ["running"], "csrf_token": token},
    )
    assert ok.status_code == 200 and "states</code> = [&#39;running&#39;]" in ok.text
    assert "us-east-1, eu-west-1" in ok.text
    unknown = web.post("/tools/nope/runs", data={"provider_id": str(pid), "csrf_token": token})
    assert unknown.status_code == 404


def test_viewers_see_tools_and_runs_but_cannot_run(
    web: TestClient, provider: dict[str, Any]
) -> None:
    sign_in(web, "vic")
    html = web.get("/tools/whoami").text
    assert '/runs"' not in html and "Runs of this tool" in html
    r = web.post(
        "/tools/whoami/runs", data={"provider_id": str(provider["id"]), "csrf_token": csrf_of(html)}
    )
    assert r.status_code == 403
    assert web.get("/tools/runs/999").status_code == 404
    assert web.get("/tools/nope").status_code == 404


def test_aws_tools_stays_the_json_catalog(web: TestClient, admin_headers: dict[str, str]) -> None:
    by_token = web.get("/aws/tools", headers={**admin_headers, "Accept": "text/html"})
    assert by_token.headers["content-type"].startswith("application/json")
    assert by_token.json()["total"] >= 6
    sign_in(web, "vic")
    by_browser = web.get("/aws/tools", headers={"Accept": "text/html"})
    assert by_browser.headers["content-type"].startswith("application/json")
    assert "text/html" in web.get("/tools").headers["content-type"]
