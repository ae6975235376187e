"""`pcm-ops verify`: the runbook's "Rollback is Successful When" as checks, printed as a
checklist; exit 1 when any check fails (a skipped check is not a pass, and not a failure)."""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import httpx
import typer

from backend.cli.client import Api, ServerDown
from backend.cli.console import (
    BAD_INPUT,
    FAILED,
    JsonOpt,
    console,
    emit_json,
    fail,
    load_settings,
)
from backend.cli.logs import error_lines, parse_since
from backend.core.config import Settings

# The runbook's decision matrix: a degradation over 50% calls for an immediate rollback.
MAX_SLOWDOWN = 0.5
# A local /api/health answers in a few ms, where +50% is scheduler noise nobody notices: a
# slowdown smaller than this never fails (--slack-ms). And a slowdown must persist: the
# timing is repeated up to ROUNDS times and the best round counts, so a burst of load on the
# machine (a backup, a deploy, another job) does not fail a rollback that a real regression
# would fail in every round.
SLACK_MS = 10.0
ROUNDS = 3
NAVIGATION = (
    "/api/feature-flags",
    "/api/providers",
    "/api/auth/aws-check-credentials",
    "/aws/tools",
    "/api/rollback-records",
)


@dataclass(frozen=True, slots=True)
class Check:
    criterion: str
    status: str  # pass, fail, skip, manual
    detail: str


def health_check(api: Api) -> Check:
    name = "Application starts and responds to health checks"
    try:
        app = api.request("GET", "/api/health")
        flags = api.request("GET", "/api/feature-flags/health")
    except ServerDown as exc:
        return Check(name, "fail", str(exc))
    body = app.json() if app.headers.get("content-type", "").startswith("application/json") else {}
    ok = app.status_code == 200 and flags.status_code == 200
    detail = (
        f"/api/health {app.status_code} {body.get('status', '?')}, "
        f"/api/feature-flags/health {flags.status_code}"
    )
    return Check(name, "pass" if ok else "fail", detail)


def navigation_check(api: Api) -> Check:
    name = "Critical user flows work: navigation (admin token)"
    failed: list[str] = []
    try:
        for path in NAVIGATION:
            status = api.request("GET", path).status_code
            if status != 200:
                failed.append(f"{path} {status}")
        with httpx.Client(base_url=api.settings.base_url, timeout=5) as anon:
            refused = anon.post("/api/feature-flags/emergency-rollback").status_code
        if refused != 401:
            failed.append(f"rollback without auth answered {refused}, not 401")
    except (ServerDown, httpx.HTTPError) as exc:
        return Check(name, "fail", str(exc))
    if failed:
        return Check(name, "fail", "; ".join(failed))
    return Check(name, "pass", f"{len(NAVIGATION)} pages 200; rollback without auth refused")


def login_check(settings: Settings) -> Check:
    """Sign in as admin when the server offers POST /api/auth/login; skipped otherwise."""
    name = "Critical user flows work: authentication (login)"
    try:
        with httpx.Client(base_url=settings.base_url, timeout=5) as http:
            probe = http.post("/api/auth/login", json={})
            if probe.status_code in (404, 405):
                return Check(name, "skip", "skipped: login not available")
            password_file = settings.data_dir / "admin_password"
            if not password_file.exists():
                return Check(name, "skip", f"skipped: no password in {password_file} to try")
            password = password_file.read_text().strip()
            signed = http.post("/api/auth/login", json={"username": "admin", "password": password})
            if signed.status_code != 200:
                return Check(name, "fail", f"login as admin answered {signed.status_code}")
            me = http.get("/api/auth/me")
            page = http.get("/api/feature-flags")
    except httpx.HTTPError as exc:
        return Check(name, "fail", f"no server answers: {exc}")
    kind = me.json().get("kind") if me.status_code == 200 else None
    if kind != "session" or page.status_code != 200:
        return Check(
            name, "fail", f"/api/auth/me {me.status_code} ({kind}), flags page {page.status_code}"
        )
    return Check(name, "pass", "signed in as admin; session reaches /api/feature-flags")


def log_check(settings: Settings, since: datetime) -> Check:
    name = "No new errors in logs"
    found = error_lines(settings.log_file, since)
    local = since.astimezone().strftime("%Y-%m-%d %H:%M:%S")
    if not found:
        return Check(name, "pass", f"no error/exception/failed lines since {local}")
    shown = " | ".join(line[:160] for line in found[-3:])
    return Check(name, "fail", f"{len(found)} line(s) since {local}; last: {shown}")


def measure(api: Api, samples: int) -> list[float]:
    """Response times of GET /api/health in ms (one warm-up call first)."""
    api.request("GET", "/api/health")
    times: list[float] = []
    for _ in range(samples):
        started = time.perf_counter()
        api.request("GET", "/api/health")
        times.append((time.perf_counter() - started) * 1000)
    return times


def record_baseline(settings: Settings, samples: int = 20) -> dict[str, Any]:
    """Measure GET /api/health and keep the median as the baseline in data/baseline.json."""
    times = measure(Api(settings), samples)
    baseline = {
        "median_ms": round(statistics.median(times), 3),
        "max_ms": round(max(times), 3),
        "samples": samples,
        "recorded_at": datetime.now(UTC).isoformat(),
    }
    settings.baseline_file.parent.mkdir(parents=True, exist_ok=True)
    settings.baseline_file.write_text(json.dumps(baseline, indent=2) + "\n")
    return baseline


def acceptable(baseline_ms: float, now_ms: float, slack_ms: float) -> bool:
    """Within +50% of the baseline, or slower by no more than `slack_ms`."""
    return now_ms <= baseline_ms * (1 + MAX_SLOWDOWN) or now_ms - baseline_ms <= slack_ms


def performance_check(
    settings: Settings, api: Api, samples: int, slack_ms: float, rounds: int = ROUNDS
) -> Check:
    name = "Performance returns to acceptable levels"
    if not settings.baseline_file.exists():
        return Check(
            name, "skip", "skipped: no baseline recorded (./pcm-ops verify --record-baseline)"
        )
    try:
        baseline = float(json.loads(settings.baseline_file.read_text())["median_ms"])
        medians: list[float] = []
        while len(medians) < rounds and (
            not medians or not acceptable(baseline, min(medians), slack_ms)
        ):
            medians.append(statistics.median(measure(api, samples)))
    except ServerDown as exc:
        return Check(name, "fail", str(exc))
    except (OSError, ValueError, KeyError) as exc:
        return Check(name, "fail", f"baseline {settings.baseline_file} unreadable: {exc}")
    now = min(medians)
    slower = (now - baseline) / baseline if baseline > 0 else 0.0
    detail = (
        f"median /api/health {now:.1f} ms vs baseline {baseline:.1f} ms ({slower:+.0%}; "
        f"fails over +{MAX_SLOWDOWN:.0%} and {slack_ms:g} ms"
        f"{f', best of {len(medians)} rounds' if len(medians) > 1 else ''})"
    )
    return Check(name, "pass" if acceptable(baseline, now, slack_ms) else "fail", detail)


def integrity_check(settings: Settings) -> Check:
    from backend.cli.db import live_check

    name = "Database integrity is maintained"
    out = live_check(settings)
    detail = f"integrity {out.get('integrity')}; audit chain {out.get('audit_chain', '-')}"
    if out.get("audit_failed_anchors"):
        detail += (
            f" (failed: {', '.join(out['audit_failed_anchors'])}; "
            f"first bad event {out.get('audit_first_bad_event') or '-'})"
        )
    return Check(name, "pass" if out["ok"] else "fail", detail)


def default_since(settings: Settings) -> datetime:
    """The start of the latest rollback record, else 15 minutes ago."""
    from backend.cli.records import fetch

    fallback = datetime.now().astimezone() - timedelta(minutes=15)
    try:
        latest = fetch(settings, limit=1, quiet=True)
    except Exception:  # records unreadable (the database may be what broke): use a window
        return fallback
    if not latest:
        return fallback
    return datetime.fromisoformat(latest[0]["timestamp"]).astimezone()


def run_checks(
    settings: Settings,
    *,
    since: datetime | None = None,
    samples: int = 20,
    slack_ms: float = SLACK_MS,
) -> list[Check]:
    api = Api(settings)
    since = since or default_since(settings)
    checks = [health_check(api), navigation_check(api), login_check(settings)]
    checks += [
        log_check(settings, since),
        performance_check(settings, api, samples, slack_ms),
        integrity_check(settings),
        Check(
            "All stakeholders are informed",
            "manual",
            "send the message from `pcm-ops records report ID`",
        ),
    ]
    return checks


MARK = {"pass": "✅", "fail": "❌", "skip": "⏭️ ", "manual": "☐ "}


def print_checklist(checks: list[Check]) -> None:
    console.print("Rollback is successful when:")
    for c in checks:
        console.print(f"{MARK[c.status]} {c.criterion}: {c.detail}", markup=False)
    failed = sum(c.status == "fail" for c in checks)
    passed = sum(c.status == "pass" for c in checks)
    skipped = sum(c.status == "skip" for c in checks)
    verdict = "VERIFIED" if not failed else "NOT VERIFIED"
    console.print(f"{verdict}: {passed} passed, {failed} failed, {skipped} skipped")


def verify(
    since: Annotated[
        str | None,
        typer.Option(help="Errors since (10m, 2h, HH:MM, ISO); default: the latest rollback."),
    ] = None,
    record_baseline_: Annotated[
        bool,
        typer.Option("--record-baseline", help="Record the response-time baseline and exit."),
    ] = False,
    samples: Annotated[int, typer.Option(min=3, max=1000, help="Health calls to time.")] = 20,
    slack_ms: Annotated[
        float, typer.Option(min=0, help="Slowdowns below this many ms never fail.")
    ] = SLACK_MS,
    as_json: JsonOpt = False,
) -> None:
    """Check every "Rollback is Successful When" criterion; exit 1 on any failure."""
    s = load_settings()
    if record_baseline_:
        try:
            baseline = record_baseline(s, samples)
        except ServerDown as exc:
            fail(f"cannot record a baseline: {exc}", FAILED)
        if as_json:
            emit_json(baseline)
        else:
            console.print(
                f"Baseline recorded in {s.baseline_file}: median {baseline['median_ms']:.2f} ms "
                f"over {samples} calls of /api/health"
            )
        return
    try:
        moment = parse_since(since) if since else None
    except ValueError as exc:
        fail(str(exc), BAD_INPUT)
    checks = run_checks(s, since=moment, samples=samples, slack_ms=slack_ms)
    failed = any(c.status == "fail" for c in checks)
    if as_json:
        emit_json({"ok": not failed, "checks": [asdict(c) for c in checks]})
    else:
        print_checklist(checks)
    raise typer.Exit(FAILED if failed else 0)
