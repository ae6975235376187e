"""Three instances on one PostgreSQL database, as behind a load balancer: each a real server on
its own port with its own data directory, there by `postgresql_support` (the README's way to
join). A change made through any of them is served by all (LISTEN/NOTIFY), an emergency
rollback on one rolls back all, turning `postgresql_support` off shows as a pending restart on
every instance (each switches only when restarted), a rollback made while PostgreSQL is down is
served by the instance that took it until it is replayed, and going back to one instance in the
README's order leaves the survivor on its SQLite file with what every instance wrote.

CI sets PCM_REQUIRE_POSTGRES=1, so there a missing server fails instead of skipping.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest

from backend.flags import DEFAULT_FLAGS
from backend.security.credentials_crypto import fresh_keyring
from tests.e2e.conftest import Server
from tests.postgres import accept_connections, refuse_connections, scratch_database

ROLLBACK_VALUES = {d.name: d.rollback_value for d in DEFAULT_FLAGS}
# Generous: this is a correctness test; how fast it arrives is bench/bench_instances.py's.
DEADLINE_S = 10.0


@pytest.fixture(scope="module")
def database() -> Iterator[tuple[str, str]]:
    """The scratch PostgreSQL database the instances share: its name and URL."""
    with scratch_database("pcm_instances") as found:
        yield found


@pytest.fixture(scope="module")
def instances(
    database: tuple[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[list[Server]]:
    with cluster(database[1], tmp_path_factory) as servers:
        yield servers


@contextmanager
def cluster(url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Server]]:
    """Three started instances on the PostgreSQL database `url`, each there by the flag as the
    README says: instance 1 switched from its SQLite file (flag on, restart); 2 and 3 joined it
    with FEATURE_FLAG_POSTGRESQL_SUPPORT=true on their first start only."""
    env = {"PCM_POSTGRES_URL": url, **shared_keys()}
    servers = [Server.in_dir(tmp_path_factory.mktemp(f"instance{n}"), env) for n in (1, 2, 3)]
    first, *others = servers
    try:
        start(first)
        toggle(first, "postgresql_support", True, "instances: move to PostgreSQL")
        assert first.stop().returncode == 0
        start(first)
        for server in others:
            start(server, {"FEATURE_FLAG_POSTGRESQL_SUPPORT": "true"})
            assert server.stop().returncode == 0
            start(server)  # its last-known flag state keeps it on PostgreSQL
        assert [backend(s) for s in servers] == ["postgresql"] * 3
        yield servers
    finally:
        for server in servers:
            server.stop()


def start(server: Server, extra_env: dict[str, str] | None = None) -> None:
    started = server.start(extra_env)
    assert started.returncode == 0, started.stdout + started.stderr


def backend(server: Server) -> str:
    """The database this instance runs on, as its public health says."""
    return str(httpx.get(f"{server.url}/api/health", timeout=10).json()["database"]["backend"])


def shared_keys() -> dict[str, str]:
    """What instances of one deployment must share, as the README says: the audit chain's
    key (else each instance's events fail the others' verification), the credential key ring
    (else credentials sealed by one cannot be read by another) and the session-signing key."""
    return {
        "PCM_AUDIT_KEYS": fresh_keyring().to_json(),
        "PCM_CREDENTIAL_KEYS": fresh_keyring().to_json(),
        "SECRET_KEY": secrets.token_urlsafe(48),
    }


def served(server: Server, name: str) -> dict[str, Any]:
    with server.client() as c:
        r = c.get(f"/api/feature-flags/{name}")
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def ofrep_value(server: Server, name: str) -> bool:
    with server.client() as c:
        r = c.post(f"/ofrep/v1/evaluate/flags/{name}", json={"context": {}})
    assert r.status_code == 200, r.text
    return bool(r.json()["value"])


def flags_list(server: Server) -> dict[str, Any]:
    with server.client() as c:
        r = c.get("/api/feature-flags")
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def pending_restart(server: Server) -> list[str]:
    """What the public flag health lists as waiting for this instance's restart."""
    r = httpx.get(f"{server.url}/api/feature-flags/health", timeout=10)
    return list(r.json()["pending_restart"])


def toggle(server: Server, name: str, enabled: bool, reason: str) -> dict[str, Any]:
    with server.client() as c:
        r = c.post(
            "/api/feature-flags/toggle",
            json={"flag_name": name, "enabled": enabled, "reason": reason},
        )
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def wait_for(servers: list[Server], condition: Callable[[Server], bool], what: str) -> None:
    """Poll each server until `condition` holds for it (or fail, naming it)."""
    for server in servers:
        deadline = time.monotonic() + DEADLINE_S
        while not condition(server):
            assert time.monotonic() < deadline, f"{server.url} {what}: not within {DEADLINE_S:g} s"
            time.sleep(0.02)


def test_a_toggle_on_one_instance__is_served_by_the_other_two(instances: list[Server]) -> None:
    one, two, three = instances
    # Given: every instance serves the flag on
    assert [served(s, "xss_protection_enabled")["enabled"] for s in instances] == [True] * 3

    # When: it is turned off through instance 1
    toggle(one, "xss_protection_enabled", False, "instances: off through one")

    # Then: instances 2 and 3 serve it off, on the JSON API and on OFREP, with who changed it
    wait_for(
        [two, three],
        lambda s: not served(s, "xss_protection_enabled")["enabled"],
        f"serving the change made on {one.url}",
    )
    for other in (two, three):
        assert served(other, "xss_protection_enabled")["updated_by"] == "token:admin"
        assert ofrep_value(other, "xss_protection_enabled") is False

    # When: it is turned on again, through instance 3 this time
    toggle(three, "xss_protection_enabled", True, "instances: on through three")

    # Then: instances 1 and 2 serve it on
    wait_for(
        [one, two],
        lambda s: served(s, "xss_protection_enabled")["enabled"],
        f"serving the change made on {three.url}",
    )
    assert [ofrep_value(s, "xss_protection_enabled") for s in (one, two)] == [True, True]


def test_postgresql_support_off_on_one_instance__pending_restart_on_all(
    instances: list[Server],
) -> None:
    one, two, _ = instances
    # Given: every instance started with postgresql_support on and has nothing to restart for
    for server in instances:
        assert served(server, "postgresql_support")["enabled"] is True
        assert pending_restart(server) == []

    # When: the runbook's rollback of the flag is sent to instance 2
    toggle(two, "postgresql_support", False, "instances: database rollback")

    # Then: every instance shows the flag off and waiting for its restart
    wait_for(
        instances,
        lambda s: pending_restart(s) == ["postgresql_support"],
        "showing postgresql_support pending restart",
    )
    for server in instances:
        flag = served(server, "postgresql_support")
        assert (flag["enabled"], flag["pending_restart"]) == (False, True)

    # When: it is turned back on (through instance 1) before any restart
    toggle(one, "postgresql_support", True, "instances: rollback called off")

    # Then: no instance has anything left to restart for
    wait_for(instances, lambda s: pending_restart(s) == [], "clearing the pending restart")


def test_emergency_rollback_on_one_instance__reaches_all(instances: list[Server]) -> None:
    one, two, three = instances
    # Given: flags on that the rollback turns off
    assert served(one, "csrf_tokens_enabled")["enabled"] is True

    # When: an emergency rollback is made through instance 3
    with three.client() as c:
        r = c.post("/api/feature-flags/emergency-rollback", json={"reason": "INC-3 instances"})
    assert r.status_code == 200, r.text
    result = r.json()
    assert result["verification"] == "success"

    # Then: every instance serves every flag at its rollback value, and the restart-bound
    # flags it changed (both were on when the instances started) wait for each one's restart
    restart_bound = sorted(d.name for d in DEFAULT_FLAGS if d.requires_restart)

    def rolled_back(server: Server) -> bool:
        return {f["name"]: f["enabled"] for f in flags_list(server)["flags"]} == ROLLBACK_VALUES

    wait_for(instances, rolled_back, "serving the rollback")
    for server in instances:
        assert pending_restart(server) == restart_bound
        assert ofrep_value(server, "csrf_tokens_enabled") is False
    # and the one rollback record (and a verifying audit chain) is seen from every instance
    for server in (one, two):
        with server.client() as c:
            records = c.get("/api/rollback-records").json()["items"]
            assert [x["id"] for x in records if x["id"] == result["record_id"]] == [
                result["record_id"]
            ]
            assert c.get("/api/feature-flags/audit/verify").json()["ok"] is True


def test_database_down__a_rollback_is_served_by_the_instance_that_took_it_until_replayed(
    database: tuple[str, str], instances: list[Server]
) -> None:
    one, two, three = instances
    name, _ = database
    # Given: every instance serves csrf_tokens_enabled on
    toggle(one, "csrf_tokens_enabled", True, "instances: before the outage")
    wait_for(instances, lambda s: served(s, "csrf_tokens_enabled")["enabled"], "serving it on")

    # When: PostgreSQL stops accepting connections, and the flag is rolled back on instance 1
    refuse_connections(name)
    try:
        rolled = toggle(one, "csrf_tokens_enabled", False, "instances: outage rollback")
        assert rolled["journal_id"]

        # Then: instance 1 serves it off; the others cannot hear of it and still serve it on
        wait_for([one], lambda s: not served(s, "csrf_tokens_enabled")["enabled"], "serving it")
        for other in (two, three):
            assert served(other, "csrf_tokens_enabled")["enabled"] is True
            assert flags_list(other)["journaled_rollbacks"] == []
    finally:
        accept_connections(name)

    # When the database answers again, instance 1 replays its journal: every instance serves
    # the rollback, and the audit chain verifies
    wait_for(
        instances,
        lambda s: not served(s, "csrf_tokens_enabled")["enabled"],
        "serving the replayed rollback",
    )
    wait_for(instances, lambda s: flags_list(s)["journaled_rollbacks"] == [], "replayed")
    with two.client() as c:
        assert c.get("/api/feature-flags/audit/verify").json()["ok"] is True


def test_back_to_one_instance_and_forward_again__nothing_any_instance_wrote_is_lost(
    instances: list[Server],
) -> None:
    one, two, three = instances
    # Given: writes through instances 2 and 3, and the flag turned off (through instance 2)
    toggle(two, "enhanced_error_handling", True, "instances: written through two")
    with three.client() as c:
        made = c.post("/api/tokens", json={"name": "made-on-three", "role": "viewer"})
        assert made.status_code == 201, made.text
    toggle(three, "postgresql_support", True, "instances: on again, if a rollback took it")
    toggle(two, "postgresql_support", False, "instances: back to one instance")
    wait_for(instances, lambda s: "postgresql_support" in pending_restart(s), "pending restart")

    # When: the README's order: the others stopped first, then the survivor restarted
    for other in (two, three):
        assert other.stop().returncode == 0
    assert one.stop().returncode == 0
    start(one)

    # Then: instance 1 serves from its own SQLite file, with what the others wrote, its
    # previous file kept as a backup, the audit chain verifying, nothing left pending
    assert backend(one) == "sqlite"
    with one.client() as c:
        assert "made-on-three" in {t["name"] for t in c.get("/api/tokens").json()["items"]}
        reasons = {
            e["reason"] for e in c.get("/api/feature-flags/audit?limit=1000").json()["items"]
        }
        assert {"instances: written through two", "instances: back to one instance"} <= reasons
        assert c.get("/api/feature-flags/audit/verify").json()["ok"] is True
    assert served(one, "enhanced_error_handling")["enabled"] is True
    assert pending_restart(one) == []
    listed = one.run(".venv/bin/pcm-ops", "db", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert "pcm_ops_tools_backup_" in listed.stdout

    # When: forward again: the flag on and the survivor restarted, then instance 2 rejoins
    # the README's way (the flag as it last knew it is off)
    toggle(one, "enhanced_error_handling", False, "instances: written on the survivor")
    toggle(one, "postgresql_support", True, "instances: forward again")
    assert one.stop().returncode == 0
    start(one)
    start(two, {"FEATURE_FLAG_POSTGRESQL_SUPPORT": "true"})
    assert two.stop().returncode == 0
    start(two)

    # Then: both on PostgreSQL, instance 2 serving what was written on the survivor's SQLite
    assert [backend(one), backend(two)] == ["postgresql", "postgresql"]
    assert served(two, "enhanced_error_handling")["enabled"] is False
    assert [pending_restart(one), pending_restart(two)] == [[], []]
    with two.client() as c:
        assert c.get("/api/feature-flags/audit/verify").json()["ok"] is True


def test_postgresql_down__back_to_one_instance__db_sync_brings_back_what_the_others_wrote(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    with (
        scratch_database("pcm_instances_down") as (name, url),
        cluster(url, tmp_path_factory) as (one, two, three),
    ):
        # Given: writes through instances 2 and 3 on PostgreSQL
        toggle(two, "enhanced_error_handling", False, "instances: written through two")
        with three.client() as c:
            made = c.post("/api/tokens", json={"name": "made-on-three", "role": "viewer"})
            assert made.status_code == 201, made.text

        # When: PostgreSQL refuses connections; the runbook's rollback goes to every instance
        # (each journals its own), the others are stopped, then the survivor restarted
        refuse_connections(name)
        try:
            for server in (one, two, three):
                rolled = toggle(server, "postgresql_support", False, "instances: PostgreSQL down")
                assert rolled["journal_id"]
            for server in (two, three, one):
                assert server.stop().returncode == 0
            start(one)

            # Then: the survivor is on SQLite as of its last sync, and says what is missing
            assert backend(one) == "sqlite"
            warning = httpx.get(f"{one.url}/api/health", timeout=10).json()["database"]["warning"]
            assert "pcm-ops db sync --from postgresql" in warning
            assert served(one, "enhanced_error_handling")["enabled"] is True
        finally:
            accept_connections(name)

        # When: PostgreSQL answers again and `db sync` runs on the survivor (twice)
        synced = one.run(".venv/bin/pcm-ops", "db", "sync", "--from", "postgresql", "--json")
        again = one.run(".venv/bin/pcm-ops", "db", "sync", "--from", "postgresql", "--json")

        # Then: what instances 2 and 3 wrote is on the survivor, once; the warning is gone
        assert synced.returncode == 0, synced.stdout + synced.stderr
        assert again.returncode == 0, again.stdout + again.stderr
        assert json.loads(synced.stdout)["changed"] > 0
        assert json.loads(again.stdout)["changed"] == 0
        assert served(one, "enhanced_error_handling")["enabled"] is False
        with one.client() as c:
            tokens = [t["name"] for t in c.get("/api/tokens").json()["items"]]
            assert tokens.count("made-on-three") == 1
            assert c.get("/api/feature-flags/audit/verify").json()["ok"] is True
            assert c.get("/api/health").json()["database"]["warning"] is None
