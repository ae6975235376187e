"""GET /metrics, read with prometheus_client's own parser: what a Prometheus server scrapes."""

from __future__ import annotations

from fastapi.testclient import TestClient
from prometheus_client import generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

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


def families(client: TestClient, headers: Headers) -> dict[str, Metric]:
    r = client.get("/metrics", headers=headers)
    assert r.status_code == 200
    return {f.name: f for f in text_string_to_metric_families(r.text)}


def series(family: Metric, suffix: str, **labels: str) -> list[Sample]:
    return [
        s
        for s in family.samples
        if s.name == family.name + suffix and labels.items() <= s.labels.items()
    ]


def test_request_latency__histogram_in_seconds_by_route_template(
    client: TestClient, admin_headers: Headers
) -> None:
    # Given: requests for three flags (three raw paths, one route) and an unknown one
    for d in DEFAULT_FLAGS[:3]:
        assert client.get(f"/api/feature-flags/{d.name}", headers=admin_headers).is_success
    assert client.get("/api/feature-flags/no_such_flag", headers=admin_headers).status_code == 404
    # When
    found = families(client, admin_headers)
    # Then: one histogram, in seconds, labelled by the route's template
    duration = found["pcm_http_request_duration_seconds"]
    assert duration.type == "histogram"
    route = "/api/feature-flags/{name}"
    ok = series(duration, "_count", method="GET", route=route, status="200")
    assert [s.value for s in ok] == [3]
    assert [s.value for s in series(duration, "_count", route=route, status="404")] == [1]
    buckets = series(duration, "_bucket", method="GET", route=route, status="200")
    bounds = [float(s.labels["le"]) for s in buckets]
    assert bounds == sorted(bounds) and bounds[0] == 0.001 and bounds[-1] == float("inf")
    counts = [s.value for s in buckets]
    assert counts == sorted(counts) and counts[-1] == 3  # cumulative, +Inf is the count
    assert 0 < series(duration, "_sum", route=route, status="200")[0].value < 3 * 60
    # No raw path (which would make a series per flag, or per scanned URL) is a label
    routes = {s.labels["route"] for s in duration.samples}
    assert not any(d.name in r for r in routes for d in DEFAULT_FLAGS)
    # The requests counter agrees with the histogram
    requests = found["pcm_http_requests"]
    assert requests.type == "counter"
    assert [s.value for s in series(requests, "_total", route=route, status="200")] == [3]


def test_unknown_paths_and_methods__one_series_each(
    client: TestClient, admin_headers: Headers
) -> None:
    for n in range(5):
        client.get(f"/scan/{n}/wp-login.php")
    client.request("FOOBAR", "/api/health")
    duration = families(client, admin_headers)["pcm_http_request_duration_seconds"]
    unmatched = series(duration, "_count", route="unmatched")
    assert [(s.labels["method"], s.labels["status"], s.value) for s in unmatched] == [
        ("GET", "404", 5)
    ]
    other = series(duration, "_count", method="other")
    assert [(s.labels["route"], s.value) for s in other] == [("/api/health", 1)]


def test_process_metrics_are_exposed(client: TestClient, admin_headers: Headers) -> None:
    found = families(client, admin_headers)
    for name in (
        "process_resident_memory_bytes",
        "process_virtual_memory_bytes",
        "process_open_fds",
        "process_max_fds",
        "process_start_time_seconds",
    ):
        assert found[name].type == "gauge"
        assert found[name].samples[0].value > 0
    assert found["process_cpu_seconds"].type == "counter"
    assert found["process_cpu_seconds"].samples[0].name == "process_cpu_seconds_total"
    assert found["pcm_server_processes"].samples[0].value == 1  # in-process: this one
    assert found["pcm_http_requests_in_progress"].samples[0].value == 1  # the scrape itself


def test_metrics_need_a_credential(client: TestClient) -> None:
    assert client.get("/metrics").status_code == 401


def test_with_the_database_down_the_flags_are_still_exposed(
    runtime: FlagRuntime, unreachable_database_url: str
) -> None:
    engine = make_engine(unreachable_database_url)
    try:
        text = generate_latest(registry_for(runtime, session_factory(engine))).decode()
    finally:
        engine.dispose()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert families["pcm_database_up"].samples[0].value == 0
    assert len(families["pcm_feature_flag_enabled"].samples) == len(DEFAULT_FLAGS)
    assert "pcm_rollbacks" not in families
