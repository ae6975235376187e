"""Per-call cost of evaluating one flag: `backend.flags.is_enabled(name)` against its peers.

    python bench/bench_eval.py [--quick] [--repeat R] [--batch-ms MS] [--flag NAME]

Our snapshot is published the way a server publishes it: a temporary SQLite store is created
with init_db(Settings(data_dir=tmp, log_dir=tmp)) and FlagRuntime(...).refresh(force=True)
loads it. Peers, measured in the same process and the same run:

* the timeit loop with an empty statement (loop overhead, included in every other row);
* a bare dict lookup `d[name]` (inline, no function call): the floor;
* a plain Python function `def f(n): return d[n]`: the floor for anything called as a function;
* the bound C method `d.__getitem__(name)`: what a call costs when no Python frame is made;
* `current().flags[name].enabled`: our richer read path (the FlagState of the snapshot);
* the OpenFeature SDK (openfeature-sdk) with its InMemoryProvider:
  `api.get_client().get_boolean_value(name, False)`;
* the Unleash Python SDK (UnleashClient) `is_enabled(name)`, bootstrapped offline from a features
  dict in an in-memory cache, `disable_metrics=True, disable_registration=True`,
  `initialize_client(fetch_toggles=False)` (offline connector). Every outgoing socket connect in
  this process is refused and counted, so the table proves it never tried to reach a server.

Method: timeit batches. Every candidate gets its own batch size (calibrated so that one batch
lasts about --batch-ms), then R rounds are run; in each round every candidate runs one batch, in
a shuffled order, so that noise from the (2-core, shared) machine hits all candidates alike.
Reported: median, p5 and p95 of the per-call cost over the R batches, the ratio of medians against
ours, and the median of the per-round (paired) ratios, which is the most noise-robust figure.
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import socket
import sys
import tempfile
import time
import timeit
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import code_note, machine_note, median, percentile, print_table, say

# --- network guard ---------------------------------------------------------------------------
# Installed before any SDK is imported: a peer that tries to reach a server is refused and shows
# up in the report instead of silently measuring a network round trip.
NETWORK_ATTEMPTS: list[Any] = []


def _refuse_connect(self: socket.socket, address: Any) -> None:
    NETWORK_ATTEMPTS.append(address)
    raise ConnectionRefusedError(f"bench_eval: network disabled, refused connect to {address}")


def _refuse_connect_ex(self: socket.socket, address: Any) -> int:
    NETWORK_ATTEMPTS.append(address)
    return 111  # ECONNREFUSED


socket.socket.connect = _refuse_connect  # type: ignore[method-assign]
socket.socket.connect_ex = _refuse_connect_ex  # type: ignore[method-assign]


@dataclass
class Candidate:
    label: str
    stmt: str
    namespace: dict[str, Any]
    expected: bool | None
    check: Callable[[], Any] | None = None
    number: int = 0
    ns_per_call: list[float] = field(default_factory=list)

    def timer(self) -> timeit.Timer:
        return timeit.Timer(self.stmt, globals=self.namespace)


# --- set-up of each system ---------------------------------------------------------------------
def setup_ours(tmp: Path) -> dict[str, Any]:
    from backend.core.config import Settings
    from backend.db.init_db import init_db
    from backend.db.session import engine_for, session_factory
    from backend.flags import FlagRuntime, current, is_enabled

    settings = Settings(data_dir=tmp, log_dir=tmp)
    init_db(settings)
    engine = engine_for(settings)
    runtime = FlagRuntime(session_factory(engine))
    snap = runtime.refresh(force=True)
    engine.dispose()  # the read path needs no database: prove it by closing it
    return {"is_enabled": is_enabled, "current": current, "snapshot": snap}


def setup_openfeature(values: dict[str, bool]) -> Any:
    from openfeature import api
    from openfeature.provider.in_memory_provider import InMemoryFlag, InMemoryProvider

    flags = {
        name: InMemoryFlag("on" if value else "off", {"on": True, "off": False})
        for name, value in values.items()
    }
    api.set_provider(InMemoryProvider(flags))
    return api.get_client()


def setup_unleash(values: dict[str, bool]) -> Any:
    from UnleashClient import UnleashClient
    from UnleashClient.cache import BaseCache
    from UnleashClient.constants import FEATURES_URL

    class MemoryCache(BaseCache):
        """An in-memory cache (the SDK ships only a file cache) bootstrapped from a dict."""

        def __init__(self) -> None:
            self._data: dict[str, Any] = {}

        def bootstrap_from_dict(self, initial_config: dict[str, Any]) -> None:
            self._data[FEATURES_URL] = json.dumps(initial_config)
            self.bootstrapped = True

        def set(self, key: str, value: Any) -> None:
            self._data[key] = value

        def mset(self, data: dict[str, Any]) -> None:
            self._data.update(data)

        def get(self, key: str, default: Any = None) -> Any:
            return self._data.get(key, default)

        def exists(self, key: str) -> bool:
            return key in self._data

        def destroy(self) -> None:
            self._data.clear()

    cache = MemoryCache()
    cache.bootstrap_from_dict(
        {
            "version": 1,
            "features": [
                {
                    "name": name,
                    "type": "release",
                    "enabled": value,
                    "strategies": [{"name": "default", "parameters": {}}],
                }
                for name, value in values.items()
            ],
        }
    )
    client = UnleashClient(
        url="http://127.0.0.1:9/api",  # discard port; never contacted (see the network guard)
        app_name="pcm-bench",
        disable_metrics=True,
        disable_registration=True,
        cache=cache,
    )
    client.initialize_client(fetch_toggles=False)  # offline connector: reads the cache only
    return client


# --- measuring -------------------------------------------------------------------------------
def calibrate(c: Candidate, batch_seconds: float) -> None:
    timer = c.timer()
    number = 1
    while True:
        elapsed = timer.timeit(number)
        if elapsed >= 0.002:
            break
        number *= 10
    per_call = elapsed / number
    c.number = max(100, int(batch_seconds / per_call))


def run(candidates: list[Candidate], rounds: int, batch_seconds: float, seed: int) -> None:
    rng = random.Random(seed)
    for c in candidates:
        calibrate(c, batch_seconds)
        c.timer().timeit(max(1, c.number // 10))  # warm-up
    for _ in range(rounds):
        order = candidates[:]
        rng.shuffle(order)
        for c in order:
            elapsed = c.timer().timeit(c.number)  # timeit disables gc while timing
            c.ns_per_call.append(elapsed / c.number * 1e9)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer, shorter batches (~5 s)")
    parser.add_argument("--repeat", type=int, help="rounds (default 25, quick 7)")
    parser.add_argument(
        "--batch-ms", type=float, help="target duration of one batch (default 40, quick 8)"
    )
    parser.add_argument("--flag", default="xss_protection_enabled", help="flag to evaluate")
    parser.add_argument("--seed", type=int, default=20240601)
    parser.add_argument("--json", type=Path, help="also write the raw results to this file")
    args = parser.parse_args(argv)
    rounds = args.repeat or (7 if args.quick else 25)
    batch_seconds = (args.batch_ms or (8.0 if args.quick else 40.0)) / 1000

    with tempfile.TemporaryDirectory(prefix="pcm-bench-eval-") as tmpdir:
        ours = setup_ours(Path(tmpdir))
    snap = ours["snapshot"]
    name = args.flag
    if name not in snap.flags:
        say(f"unknown flag {name!r}; known: {', '.join(snap.flags)}")
        return 2
    values = {n: f.enabled for n, f in snap.flags.items()}
    expected = values[name]
    table = dict(values)  # the bare-dict peer holds the same data
    is_enabled = ours["is_enabled"]
    current = ours["current"]

    def plain_function(n: str, _d: dict[str, bool] = table) -> bool:
        return _d[n]

    of_client = setup_openfeature(values)
    unleash = setup_unleash(values)

    ours_label = "ours: is_enabled(name)"
    candidates = [
        Candidate("timeit loop, empty statement", "pass", {}, None),
        Candidate("bare dict lookup d[name]", "d[name]", {"d": table, "name": name}, expected),
        Candidate(
            "plain function f(name) -> d[name]",
            "f(name)",
            {"f": plain_function, "name": name},
            expected,
        ),
        Candidate(
            "C-level call d.__getitem__(name)",
            "getitem(name)",
            {"getitem": table.__getitem__, "name": name},
            expected,
        ),
        Candidate(
            ours_label, "is_enabled(name)", {"is_enabled": is_enabled, "name": name}, expected
        ),
        Candidate(
            "ours: current().flags[name].enabled",
            "current().flags[name].enabled",
            {"current": current, "name": name},
            expected,
        ),
        Candidate(
            "OpenFeature InMemoryProvider get_boolean_value",
            "client.get_boolean_value(name, False)",
            {"client": of_client, "name": name},
            expected,
        ),
        Candidate(
            "Unleash SDK is_enabled (offline bootstrap)",
            "client.is_enabled(name)",
            {"client": unleash, "name": name},
            expected,
        ),
    ]
    for c in candidates:
        if c.expected is None:
            continue
        got = eval(c.stmt, c.namespace)  # our own fixed statements
        if got is not c.expected:
            say(f"WRONG ANSWER from {c.label}: {got!r}, expected {c.expected!r}")
            return 1

    say(
        f"bench_eval: flag {name!r} = {expected}, snapshot version {snap.version}, "
        f"{len(snap.flags)} flags"
    )
    say(f"machine: {machine_note()}")
    say(f"code: {code_note()}")
    say(
        f"method: {rounds} rounds x 1 batch per candidate (~{batch_seconds * 1000:.0f} ms each), "
        "shuffled order per round, gc off while timing"
    )
    gc.collect()
    started = time.perf_counter()
    try:
        run(candidates, rounds, batch_seconds, args.seed)
    finally:
        unleash.destroy()
    took = time.perf_counter() - started

    ref = next(c for c in candidates if c.label == ours_label)
    ref_median = median(ref.ns_per_call)
    rows = []
    for c in candidates:
        med = median(c.ns_per_call)
        paired = [x / y for x, y in zip(c.ns_per_call, ref.ns_per_call, strict=True)]
        rows.append(
            [
                c.label,
                f"{c.number:,}",
                f"{med:,.1f}",
                f"{min(c.ns_per_call):,.1f}",
                f"{percentile(c.ns_per_call, 5):,.1f}",
                f"{percentile(c.ns_per_call, 95):,.1f}",
                f"{med / ref_median:,.2f}x",
                f"{median(paired):,.2f}x",
            ]
        )
    print_table(
        f"Flag evaluation cost, ns per call ({rounds} rounds, {took:.1f} s)",
        [
            "candidate",
            "calls/batch",
            "median ns",
            "best ns",
            "p5 ns",
            "p95 ns",
            "vs ours",
            "paired ratio",
        ],
        rows,
    )
    verdict_ns = "PASS" if ref_median <= 100 else "FAIL"
    of = next(c for c in candidates if c.label.startswith("OpenFeature"))
    of_ratio = median([x / y for x, y in zip(of.ns_per_call, ref.ns_per_call, strict=True)])
    verdict_of = "PASS" if of_ratio >= 100 else "FAIL"
    say(f"target ours median <= 100 ns: {ref_median:.1f} ns -> {verdict_ns}")
    say(f"target ~100x faster than OpenFeature in-memory: {of_ratio:.0f}x -> {verdict_of}")
    say(
        f"network connection attempts during the run: {len(NETWORK_ATTEMPTS)}"
        + (f" {NETWORK_ATTEMPTS[:3]}" if NETWORK_ATTEMPTS else "")
    )
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "machine": machine_note(),
                    "rounds": rounds,
                    "flag": name,
                    "network_attempts": len(NETWORK_ATTEMPTS),
                    "candidates": [
                        {"label": c.label, "number": c.number, "ns_per_call": c.ns_per_call}
                        for c in candidates
                    ],
                },
                indent=1,
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
