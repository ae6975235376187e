"""GET /metrics, read with prometheus_client's own parser: what a Prometheus server scrapes."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from backend.db.session import make_engine, session_factory
from backend.flags import DEFAULT_FLAGS, FlagRuntime
from backend.metrics.prometheus import registry_for

CSRF = "csrf_tokens_enabled"
Headers = dict[str, str]
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(client: TestClient, headers: Headers) -> Samples:
    r = client.get("/metrics", headers=headers)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(r.text)
        for s in family.samples
    }


def flag_value(samples: Samples, name: str) -> float:
    found = [
        v
        for (metric, labels), v in samples.items()
        if metric == "pcm_feature_flag_enabled" and ("flag", name) in labels
    ]
    assert len(found) == 1
    return found[0]


def test_every_flag_its_value_and_the_version_are_exposed(
    client: TestClient, admin_headers: Headers
) -> None:
    samples = scrape(client, admin_headers)
    for d in DEFAULT_FLAGS:
        assert flag_value(samples, d.name) == float(d.default)
    version = client.get("/api/feature-flags", headers=admin_headers).json()["version"]
    assert samples[("pcm_feature_flags_version", ())] == version
    assert samples[("pcm_database_up", ())] == 1
    assert samples[("pcm_feature_flags_healthy", ())] == 1
    assert samples[("pcm_feature_flags_rollback_mode", ())] == 0


def test_changes_and_rollbacks_are_counted(client: TestClient, admin_headers: Headers) -> None:
    before = scrape(client, admin_headers)
    client.post(
        "/api/feature-flags/toggle",
        headers=admin_headers,
        json={"flag_name": CSRF, "enabled": False},
    )
    result = client.post("/api/feature-flags/emergency-rollback", headers=admin_headers).json()
    after = scrape(client, admin_headers)
    assert flag_value(after, CSRF) == 0
    changes = ("pcm_feature_flag_changes_total", ())
    assert after[changes] == before[changes] + 1 + len(result["changed"])
    emergency = ("pcm_rollbacks_total", (("method", "emergency"), ("verification", "success")))
    assert after[emergency] == before.get(emergency, 0) + 1


def test_request_figures_cover_every_request_of_the_window(
    client: TestClient, admin_headers: Headers
) -> None:
    for _ in range(5):
        client.get("/api/health")
    client.app.state.metrics.flush()  # type: ignore[attr-defined]
    samples = scrape(client, admin_headers)
    assert samples[("pcm_http_requests_5m", ())] >= 5
    assert samples[("pcm_http_server_errors_5m", ())] == 0
    p95 = samples[("pcm_http_request_duration_ms_5m", (("quantile", "0.95"),))]
    assert p95 > 0


def test_metrics_need_a_credential(client: TestClient) -> None:
    assert client.get("/metrics").status_code == 401


def test_with_the_database_down_the_flags_are_still_exposed(
    runtime: FlagRuntime, tmp_path: Path
) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/no/such/dir/pcm.db")
    try:
        text = generate_latest(registry_for(runtime, session_factory(engine))).decode()
    finally:
        engine.dispose()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert families["pcm_database_up"].samples[0].value == 0
    assert len(families["pcm_feature_flag_enabled"].samples) == len(DEFAULT_FLAGS)
    assert "pcm_rollbacks" not in families
