"""A real server with two workers: /metrics adds up every worker's requests whichever worker
answers the scrape, and the log file rotates without losing or repeating a line."""

from __future__ import annotations

import json
import os
import signal
import stat
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from prometheus_client import ProcessCollector
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from backend.core.logfiles import rotated_copies
from backend.metrics.processes import children
from tests.e2e.conftest import Server

FLAG_ROUTE = "/api/feature-flags/{name}"
# Flags that change nothing a restart must apply; one per thread, so every toggle is a change.
FLAGS = ("xss_protection_enabled", "csrf_tokens_enabled", "enhanced_error_handling")
LOG_MAX_BYTES = 4096
PCM_OPS = str(Path(sys.executable).parent / "pcm-ops")


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("workers")
    env = {"WORKERS": "2", "PCM_LOG_MAX_BYTES": str(LOG_MAX_BYTES), "PCM_LOG_BACKUPS": "1000"}
    with Server.running(tmp, env) as server:
        yield server


def get(server: Server, path: str) -> httpx.Response:
    """On a connection of its own: the kernel hands each connection to either worker."""
    headers = {"Authorization": f"Bearer {server.token()}", "Connection": "close"}
    return httpx.get(server.url + path, headers=headers, timeout=30)


def scrape(server: Server) -> dict[str, Metric]:
    r = get(server, "/metrics")
    assert r.status_code == 200
    return {f.name: f for f in text_string_to_metric_families(r.text)}


def total(families: dict[str, Metric], family: str, sample: str, **labels: str) -> float:
    """A sample summed over the series that carry `labels`."""
    found = families.get(family)
    if found is None:
        return 0.0
    return sum(
        s.value for s in found.samples if s.name == sample and labels.items() <= s.labels.items()
    )


def histogram_count(families: dict[str, Metric], **labels: str) -> float:
    """The latency histogram's `_count` summed over the series that carry `labels`."""
    return total(
        families,
        "pcm_http_request_duration_seconds",
        "pcm_http_request_duration_seconds_count",
        **labels,
    )


def per_worker(server: Server, route: str) -> dict[int, float]:
    """Requests of `route` counted in each worker's own file."""
    counts: dict[int, float] = {}
    for path in (server.data_dir / "prometheus_multiproc").glob("histogram_*.db"):
        pid = int(path.stem.rsplit("_", 1)[1])
        merged = {m.name: m for m in MultiProcessCollector.merge([str(path)])}  # type: ignore[no-untyped-call]
        counts[pid] = histogram_count(merged, route=route)
    return {pid: n for pid, n in counts.items() if n}


def flag_requests(server: Server, count: int) -> int:
    """`count` flag reads from four threads at once (so both workers take some)."""
    paths = [f"/api/feature-flags/{FLAGS[n % len(FLAGS)]}" for n in range(count)]
    with ThreadPoolExecutor(4) as pool:
        statuses = list(pool.map(lambda p: get(server, p).status_code, paths))
    assert statuses == [200] * count
    return count


def test_histogram_count__every_request_whichever_worker_answers(live: Server) -> None:
    # Given: N requests of one route, served by both workers
    before = histogram_count(scrape(live), route=FLAG_ROUTE)
    made = 0
    for _ in range(20):
        made += flag_requests(live, 20)
        if len(per_worker(live, FLAG_ROUTE)) == 2:
            break
    assert len(per_worker(live, FLAG_ROUTE)) == 2, "every request went to one worker"
    # When: scrapes, three at a time (so that a busy worker leaves the next to the other),
    # until each worker has answered some
    answered_before = per_worker(live, "/metrics")

    def counted(_: int) -> float:
        families = scrape(live)
        return histogram_count(families, route=FLAG_ROUTE, method="GET")

    def both_answered() -> bool:
        answered = per_worker(live, "/metrics")
        return len([p for p in answered if answered[p] > answered_before.get(p, 0)]) == 2

    counts: list[float] = []
    with ThreadPoolExecutor(3) as pool:
        for _ in range(40):
            counts += pool.map(counted, range(6))
            if both_answered():
                break
    # Then: both answered, and every scrape counted every request
    assert both_answered(), "one worker answered every scrape"
    assert set(counts) == {before + made}


def test_counters_only_grow(live: Server) -> None:
    # Given
    first = scrape(live)
    # When
    for _ in range(10):
        assert get(live, "/api/health").status_code == 200
    flag_requests(live, 8)
    second = scrape(live)
    # Then: no counter went down, and the health requests are all there
    for family in first.values():
        if family.type not in ("counter", "histogram"):
            continue
        later = {
            (s.name, tuple(sorted(s.labels.items()))): s.value for s in second[family.name].samples
        }
        for s in family.samples:
            assert later[(s.name, tuple(sorted(s.labels.items())))] >= s.value, s
    health = ("pcm_http_requests", "pcm_http_requests_total")
    assert (
        total(second, *health, route="/api/health")
        == total(first, *health, route="/api/health") + 10
    )


def test_process_metrics__of_the_supervisor_and_its_workers(live: Server) -> None:
    found = scrape(live)
    supervisor = int((live.data_dir / "pcm_ops_tools.pid").read_text())
    processes = found["pcm_server_processes"].samples[0].value
    assert processes == 1 + len(children(supervisor)) and processes >= 3
    for name in ("process_resident_memory_bytes", "process_open_fds", "process_max_fds"):
        assert found[name].samples[0].value > 0
    assert found["process_cpu_seconds"].samples[0].value > 0
    own = {
        f.name: f.samples[0].value
        for f in ProcessCollector(pid=lambda: supervisor, registry=None).collect()
    }
    # The server started when its supervisor did; it holds more memory than the supervisor alone
    assert found["process_start_time_seconds"].samples[0].value == own["process_start_time_seconds"]
    assert (
        found["process_resident_memory_bytes"].samples[0].value
        > own["process_resident_memory_bytes"]
    )


def test_metrics_files__owner_only(live: Server) -> None:
    directory = live.data_dir / "prometheus_multiproc"
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    files = list(directory.iterdir())
    assert files and all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in files)


def test_log_rotates__every_line_once_in_owner_only_files(live: Server) -> None:
    # When: flag changes from three threads, each logging one "Feature flag" line, while the
    # log is rotated every 4 KiB
    def toggles(flag: str) -> None:
        for n in range(16):
            r = httpx.post(
                live.url + "/api/feature-flags/toggle",
                headers={"Authorization": f"Bearer {live.token()}", "Connection": "close"},
                json={"flag_name": flag, "enabled": n % 2 == 1, "reason": f"rotation {flag} {n}"},
                timeout=30,
            )
            assert r.status_code == 200, r.text

    with ThreadPoolExecutor(len(FLAGS)) as pool:
        list(pool.map(toggles, FLAGS))
    # Then: each change's line is in exactly one place
    log = live.log_file
    files = [*rotated_copies(log), log]
    lines = [line for f in files for line in f.read_text().splitlines()]
    for flag in FLAGS:
        for n in range(16):
            mine = [line for line in lines if line.endswith(f"reason: rotation {flag} {n}")]
            assert len(mine) == 1, (flag, n, mine)
    assert len(files) > 3, "the log never rotated"
    writers = {line.split("[pid ", 1)[1].split("]", 1)[0] for line in lines if "rotation " in line}
    assert len(writers) == 2, "one worker wrote every line"
    # No copy is much past the limit (a line or so over: the lock-free size check is per write)
    assert all(f.stat().st_size < LOG_MAX_BYTES + 4096 for f in rotated_copies(log))
    for f in [*files, log.parent / ".__pcm_ops_tools.lock"]:
        assert stat.S_IMODE(f.stat().st_mode) == 0o600, f
    # And `pcm-ops logs --flags` finds them all, in the current file and the rotated copies
    shown = live.run(PCM_OPS, "logs", "--flags", "-n", str(16 * len(FLAGS)), "--json")
    assert shown.returncode == 0, shown.stderr
    reasons = {line.rsplit("reason: ", 1)[1] for line in json.loads(shown.stdout)["lines"]}
    assert reasons == {f"rotation {flag} {n}" for flag in FLAGS for n in range(16)}


def test_a_killed_worker__its_counts_stay(live: Server) -> None:
    # Given
    flag_requests(live, 12)
    before = histogram_count(scrape(live), route=FLAG_ROUTE)
    victim = max(per_worker(live, FLAG_ROUTE))
    # When: a worker dies (uvicorn starts another)
    os.kill(victim, signal.SIGKILL)
    supervisor = int((live.data_dir / "pcm_ops_tools.pid").read_text())
    deadline = time.monotonic() + 60
    while victim in children(supervisor) and time.monotonic() < deadline:
        time.sleep(0.1)
    # Then: what it counted is still counted, by whichever worker answers
    for _ in range(10):
        after = scrape(live)
        assert histogram_count(after, route=FLAG_ROUTE) == before
    assert before >= 12
    # and its live gauge (requests in progress) no longer counts
    assert not (live.data_dir / "prometheus_multiproc" / f"gauge_livesum_{victim}.db").exists()
