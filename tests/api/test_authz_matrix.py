"""Authorization matrix: every route of the app, called by each kind of caller.

Callers: anonymous, viewer, operator, admin (sessions) and an API token.

The routes come from the app's route table, so a new route without a rule in RULES fails
`test_every_route_has_a_rule`. A rule names the least role a route needs ("public" for none)
and a request that succeeds when allowed. Then each caller must get:
  anonymous → 401 (pages: 303 to /login) · a role below the rule's → 403 · otherwise the rule's
  status (`ok`; None means "served": anything but 401, 403 or a 5xx).
Session callers send their CSRF token on state-changing requests; "token" is an operator token.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI, routing
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker
from starlette.routing import Mount

from backend.security.tokens import Role, create_token
from backend.security.users import create_user

PASSWORD = "correct horse battery staple"
RANK = {"public": -1, "viewer": 0, "operator": 1, "admin": 2}
CALLERS = ["anonymous", "viewer", "operator", "admin", "token"]
TOKEN_ROLE = "operator"
_n = itertools.count()


@dataclass(frozen=True)
class Rule:
    role: str
    path: str | None = None  # the template's placeholders filled in; None: the template itself
    json: Any = None
    form: dict[str, str] | None = None
    ok: int | None = 200
    ok_token: int | None = None  # when a bearer token gets another answer than a session
    anonymous: int = 401
    fresh: bool = False  # the call changes the caller's session: use a fresh one
    make: Callable[[Any], dict[str, Any]] | None = field(default=None, compare=False)


PAGE = {"anonymous": 303}
SERVED = {"ok": None}


def new_user(_: Any) -> dict[str, Any]:
    return {"json": {"username": f"made{next(_n)}", "role": "viewer"}}


def new_token_body(_: Any) -> dict[str, Any]:
    return {"json": {"name": f"made{next(_n)}", "role": "viewer"}}


def token_to_revoke(ctx: Any) -> dict[str, Any]:
    with ctx.sessions.begin() as s:
        row, _ = create_token(s, name=f"victim{next(_n)}", role=Role.VIEWER)
        return {"path": f"/api/tokens/{row.id}"}


def page_token_to_revoke(ctx: Any) -> dict[str, Any]:
    token_id = token_to_revoke(ctx)["path"].rsplit("/", 1)[1]
    return {"path": f"/admin/tokens/{token_id}/revoke"}


RULES: dict[tuple[str, str], Rule] = {
    # The API's documentation: signed-in only (its assets are the public Swagger UI/ReDoc)
    ("GET", "/openapi.json"): Rule("viewer"),
    ("GET", "/docs"): Rule("viewer", **PAGE),
    ("GET", "/redoc"): Rule("viewer", **PAGE),
    ("MOUNT", "/docs/assets"): Rule("public"),
    ("MOUNT", "/static"): Rule("public"),
    ("GET", "/favicon.ico"): Rule("public", **SERVED),
    # health (public by the runbook)
    ("GET", "/api/health"): Rule("public"),
    ("GET", "/api/feature-flags/health"): Rule("public"),
    # OpenFeature remote evaluation: read-only, any signed-in caller
    ("POST", "/ofrep/v1/evaluate/flags/{key}"): Rule(
        "viewer", path="/ofrep/v1/evaluate/flags/csrf_tokens_enabled", json={"context": {}}
    ),
    ("POST", "/ofrep/v1/evaluate/flags"): Rule("viewer", json={}),
    ("GET", "/ofrep/v1/configuration"): Rule("viewer"),
    ("GET", "/metrics"): Rule("viewer"),
    # flags
    ("GET", "/api/feature-flags"): Rule("viewer"),
    ("GET", "/api/feature-flags/audit"): Rule("viewer"),
    ("GET", "/api/feature-flags/audit/verify"): Rule("viewer"),
    ("GET", "/api/feature-flags/{name}"): Rule("viewer", "/api/feature-flags/postgresql_support"),
    ("GET", "/api/feature-flags/{name}/history"): Rule(
        "viewer", "/api/feature-flags/postgresql_support/history"
    ),
    ("POST", "/api/feature-flags/toggle"): Rule(
        "operator", json={"flag_name": "postgresql_support", "enabled": False}
    ),
    ("POST", "/api/feature-flags/emergency-rollback"): Rule("operator", json={"reason": "drill"}),
    ("POST", "/api/feature-flags/{name}/rollback"): Rule(
        "operator", "/api/feature-flags/postgresql_support/rollback"
    ),
    ("GET", "/api/rollback-records"): Rule("viewer"),
    ("GET", "/api/rollback-records/{record_id}"): Rule("viewer", "/api/rollback-records/1"),
    ("POST", "/api/rollback-records/{record_id}/acknowledge"): Rule(
        "operator", "/api/rollback-records/1/acknowledge"
    ),
    ("GET", "/api/metrics/timeline"): Rule("viewer", **SERVED),
    # sign-in and the caller's session
    ("POST", "/api/auth/login"): Rule(
        "public", json={"username": "viewer1", "password": PASSWORD}, fresh=True
    ),
    ("POST", "/api/auth/logout"): Rule("viewer", fresh=True),
    ("GET", "/api/auth/me"): Rule("viewer"),
    ("GET", "/api/auth/preferences"): Rule("viewer"),
    ("POST", "/api/auth/preferences"): Rule(
        "viewer", json={"key": "theme", "value": "dark"}, ok_token=403
    ),
    ("GET", "/login"): Rule("public"),
    ("POST", "/login"): Rule(
        "public", form={"username": "viewer1", "password": PASSWORD}, ok=303, fresh=True
    ),
    ("POST", "/logout"): Rule("viewer", ok=303, fresh=True),
    ("GET", "/whoami"): Rule("viewer", **PAGE),
    # users and tokens
    ("GET", "/api/users"): Rule("admin"),
    ("POST", "/api/users"): Rule("admin", ok=201, make=new_user),
    ("PATCH", "/api/users/{username}"): Rule("admin", "/api/users/target", json={"role": "viewer"}),
    ("GET", "/api/tokens"): Rule("admin"),
    ("POST", "/api/tokens"): Rule("admin", ok=201, make=new_token_body),
    ("DELETE", "/api/tokens/{token_id}"): Rule("admin", make=token_to_revoke),
    # providers and AWS (bodies are the AWS work's; here only who gets in is checked)
    ("GET", "/api/providers"): Rule("viewer"),
    ("GET", "/api/providers/regions"): Rule("viewer", **SERVED),
    ("GET", "/api/providers/{provider_id}"): Rule("viewer", "/api/providers/1", **SERVED),
    ("POST", "/api/providers"): Rule("admin", json={}, **SERVED),
    ("PATCH", "/api/providers/{provider_id}"): Rule("admin", "/api/providers/1", json={}, **SERVED),
    ("DELETE", "/api/providers/{provider_id}"): Rule("admin", "/api/providers/999", **SERVED),
    ("GET", "/aws/tools"): Rule("viewer"),
    ("GET", "/api/aws/tools"): Rule("viewer", **SERVED),
    ("POST", "/api/aws/tools/{tool_name}/runs"): Rule(
        "operator", "/api/aws/tools/nope/runs", json={}, **SERVED
    ),
    ("GET", "/api/aws/runs"): Rule("viewer", **SERVED),
    ("GET", "/api/aws/runs/{run_id}"): Rule("viewer", "/api/aws/runs/1", **SERVED),
    ("GET", "/api/aws/runs/{run_id}/download"): Rule(
        "viewer", "/api/aws/runs/1/download", **SERVED
    ),
    ("GET", "/api/auth/aws-check-credentials"): Rule("viewer", **SERVED),
    ("GET", "/api/aws/credentials"): Rule("viewer", **SERVED),
    # Each caller keeps their own AWS credentials: a viewer may store theirs.
    ("PUT", "/api/aws/credentials/{provider_id}"): Rule(
        "viewer", "/api/aws/credentials/999", json={}, **SERVED
    ),
    ("DELETE", "/api/aws/credentials/{provider_id}"): Rule(
        "viewer", "/api/aws/credentials/999", **SERVED
    ),
    # the web console's pages
    ("GET", "/"): Rule("viewer", **PAGE, **SERVED),
    ("GET", "/timeline"): Rule("viewer", **PAGE, **SERVED),
    ("GET", "/flags"): Rule("viewer", **PAGE, **SERVED),
    ("POST", "/flags/{name}/toggle"): Rule(
        "operator", "/flags/postgresql_support/toggle", form={"enabled": "false"}, **PAGE, **SERVED
    ),
    ("POST", "/flags/{name}/rollback"): Rule(
        "operator", "/flags/postgresql_support/rollback", form={}, **PAGE, **SERVED
    ),
    ("GET", "/rollback/emergency"): Rule("operator", **PAGE, **SERVED),
    ("POST", "/rollback/emergency"): Rule("operator", form={"reason": "drill"}, **PAGE, **SERVED),
    ("GET", "/history"): Rule("viewer", **PAGE, **SERVED),
    ("GET", "/history.csv"): Rule("viewer", **PAGE, **SERVED),
    ("GET", "/records/{record_id}"): Rule("viewer", "/records/1", **PAGE, **SERVED),
    ("POST", "/records/{record_id}/acknowledge"): Rule(
        "operator", "/records/1/acknowledge", form={}, ok=303, **PAGE
    ),
    ("GET", "/providers"): Rule("viewer", **PAGE, **SERVED),
    ("GET", "/providers/new"): Rule("admin", **PAGE, **SERVED),
    ("GET", "/providers/{provider_id}/edit"): Rule(
        "admin", "/providers/999/edit", **PAGE, **SERVED
    ),
    ("POST", "/providers"): Rule("admin", form={"name": "x"}, **PAGE, **SERVED),
    ("POST", "/providers/{provider_id}"): Rule(
        "admin", "/providers/999", form={"name": "x"}, **PAGE, **SERVED
    ),
    ("POST", "/providers/{provider_id}/delete"): Rule(
        "admin", "/providers/999/delete", form={}, **PAGE, **SERVED
    ),
    ("GET", "/credentials"): Rule("viewer", **PAGE, **SERVED),
    ("POST", "/credentials/{provider_id}"): Rule(
        "viewer", "/credentials/999", form={}, **PAGE, **SERVED
    ),
    ("POST", "/credentials/{provider_id}/delete"): Rule(
        "viewer", "/credentials/999/delete", form={}, **PAGE, **SERVED
    ),
    ("GET", "/tools"): Rule("viewer", **PAGE, **SERVED),
    ("GET", "/tools/{tool_name}"): Rule("viewer", "/tools/whoami", **PAGE, **SERVED),
    ("GET", "/tools/runs/{run_id}"): Rule("viewer", "/tools/runs/999", **PAGE, **SERVED),
    ("POST", "/tools/{tool_name}/runs"): Rule(
        "operator", "/tools/whoami/runs", form={"provider_id": "999"}, **PAGE, **SERVED
    ),
    ("GET", "/admin/users"): Rule("admin", **PAGE, **SERVED),
    ("POST", "/admin/users"): Rule("admin", form={"username": "x"}, **PAGE, **SERVED),
    ("POST", "/admin/users/{username}/disable"): Rule(
        "admin", "/admin/users/target/disable", form={}, **PAGE, **SERVED
    ),
    ("POST", "/admin/users/{username}/enable"): Rule(
        "admin", "/admin/users/target/enable", form={}, **PAGE, **SERVED
    ),
    ("POST", "/admin/users/{username}/role"): Rule(
        "admin", "/admin/users/target/role", form={"role": "viewer"}, **PAGE, **SERVED
    ),
    ("POST", "/admin/users/{username}/password"): Rule(
        "admin", "/admin/users/target/password", form={"password": ""}, **PAGE, **SERVED
    ),
    ("GET", "/admin/tokens"): Rule("admin", **PAGE, **SERVED),
    ("POST", "/admin/tokens"): Rule(
        "admin", form={"name": "x", "role": "viewer"}, **PAGE, **SERVED
    ),
    ("POST", "/admin/tokens/{token_id}/revoke"): Rule(
        "admin", form={}, make=page_token_to_revoke, **PAGE, **SERVED
    ),
}


def route_table(app: FastAPI) -> set[tuple[str, str]]:
    """(method, path template) of every route; mounts as ("MOUNT", path). HEAD mirrors GET."""
    found: set[tuple[str, str]] = set()
    for context in routing.iter_route_contexts(app.routes):
        route = context.original_route
        if isinstance(route, Mount):
            found.add(("MOUNT", route.path))
            continue
        for method in getattr(route, "methods", None) or ():
            if method != "HEAD":
                # Convertors ({id:int}) are routing detail, not part of the template.
                found.add((method, re.sub(r":\w+}", "}", str(context.path))))
    return found


def test_every_route_has_a_rule(client: TestClient) -> None:
    table = route_table(client.app)  # type: ignore[arg-type]
    missing = sorted(table - set(RULES))
    assert not missing, f"routes without an authorization rule (add them to RULES): {missing}"
    stale = sorted(set(RULES) - table)
    assert not stale, f"rules for routes that no longer exist: {stale}"


@dataclass
class Context:
    client: TestClient
    sessions: sessionmaker[Session]
    token: str
    browsers: dict[str, tuple[TestClient, str]]

    def sign_in(self, role: str) -> tuple[TestClient, str]:
        browser = TestClient(self.client.app)
        r = browser.post("/api/auth/login", json={"username": f"{role}1", "password": PASSWORD})
        assert r.status_code == 200, r.text
        return browser, r.json()["csrf_token"]


@pytest.fixture
def ctx(
    client: TestClient, sessions: sessionmaker[Session], admin_headers: dict[str, str]
) -> Context:
    with sessions.begin() as s:
        for role in ("viewer", "operator", "admin"):
            create_user(s, username=f"{role}1", password=PASSWORD, role=role)
        create_user(s, username="target", password=PASSWORD, role="viewer")
        _, token = create_token(s, name="matrix", role=Role(TOKEN_ROLE))
    # A rollback record for the {record_id} routes (a flag that is on: a rollback that
    # changes nothing records nothing).
    r = client.post("/api/feature-flags/thread_safe_sessions/rollback", headers=admin_headers)
    assert r.status_code == 200 and r.json()["record_id"] == 1
    c = Context(client, sessions, token, {})
    c.browsers = {role: c.sign_in(role) for role in ("viewer", "operator", "admin")}
    return c


def expected(rule: Rule, caller: str) -> int | None:
    if rule.role == "public":
        return rule.ok
    if caller == "anonymous":
        return rule.anonymous
    rank = RANK[TOKEN_ROLE if caller == "token" else caller]
    if rank < RANK[rule.role]:
        return 403
    return rule.ok_token if caller == "token" and rule.ok_token is not None else rule.ok


def static_file() -> str:
    from backend.web import STATIC_DIR

    first = next(p for p in sorted(Path(STATIC_DIR).rglob("*")) if p.is_file())
    return "/static/" + first.relative_to(STATIC_DIR).as_posix()


def call(ctx: Context, key: tuple[str, str], rule: Rule, caller: str) -> Any:
    method, template = key
    spec: dict[str, Any] = {"path": rule.path, "json": rule.json, "form": rule.form}
    if rule.make:
        spec.update(rule.make(ctx))
    path = spec["path"] or template
    if method == "MOUNT":
        method, path = "GET", static_file()
    headers: dict[str, str] = {}
    if caller == "anonymous":
        http = TestClient(ctx.client.app)
    elif caller == "token":
        http = TestClient(ctx.client.app)
        headers["Authorization"] = f"Bearer {ctx.token}"
    else:
        http, csrf = ctx.sign_in(caller) if rule.fresh else ctx.browsers[caller]
        headers["X-CSRF-Token"] = csrf
    return http.request(
        method,
        path,
        json=spec["json"],
        data=spec["form"],
        headers=headers,
        follow_redirects=False,
    )


@pytest.mark.parametrize("caller", CALLERS)
def test_the_matrix(ctx: Context, caller: str) -> None:
    table = route_table(ctx.client.app)  # type: ignore[arg-type]
    failures = []
    for key in sorted(table & set(RULES)):
        rule = RULES[key]
        r = call(ctx, key, rule, caller)
        want = expected(rule, caller)
        if want is None:
            good = r.status_code not in (401, 403) and r.status_code < 500
        else:
            good = r.status_code == want
        if good and r.status_code == 303 and want == 303 and rule.anonymous == 303:
            good = caller != "anonymous" or r.headers["location"].startswith("/login")
        if not good:
            failures.append(f"{key} as {caller}: {r.status_code} (expected {want}) {r.text[:120]}")
    assert not failures, "\n".join(failures)
