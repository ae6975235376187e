"""A live server (./start.sh, two workers, the default SQLite file) while another connection
holds the database's write lock: changes wait for it within the bound, then answer 503
"database busy, retry"; nothing is journaled and no worker turns to its last-known state."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.e2e.conftest import Server
from tests.sqlite_lock import WriteLock

CSRF = "csrf_tokens_enabled"
BOUND = "4"  # seconds a change waits for the lock (PCM_DATABASE_BUSY_TIMEOUT)


def toggle(c: httpx.Client, enabled: bool, flag: str = CSRF) -> httpx.Response:
    return c.post(
        "/api/feature-flags/toggle",
        json={"flag_name": flag, "enabled": enabled, "reason": "busy test"},
        timeout=30,
    )


def assert_serving_the_store(c: httpx.Client) -> None:
    """Answers from either worker: healthy, from the store, nothing journaled."""
    for _ in range(6):
        health = c.get("/api/health").json()
        assert health["status"] == "healthy", health
        assert health["flags"]["from_last_known_state"] is False
        assert health["flags"]["store_reachable"] is True
        assert health["journaled_rollbacks"] == []


def start(server_dirs: Server) -> Path:
    # PCM_POSTGRES_URL lets postgresql_support be enabled (409 without it); nothing connects
    # to it here: the switch would happen at a restart, and these writes are refused as busy.
    env = {
        "WORKERS": "2",
        "PCM_DATABASE_BUSY_TIMEOUT": BOUND,
        "PCM_POSTGRES_URL": "postgresql+psycopg://postgres@127.0.0.1:1/never_used",
    }
    started = server_dirs.start(env)
    assert started.returncode == 0, started.stdout + started.stderr
    server_dirs.env.update(env)
    return server_dirs.data_dir / "pcm_ops_tools.db"


def test_server__write_lock_shorter_than_the_bound__changes_wait_and_are_stored(
    server_dirs: Server,
) -> None:
    database = start(server_dirs)
    with server_dirs.client() as c:
        assert c.get("/api/feature-flags").status_code == 200  # the token is known: no write
        for enabled in (False, True):
            # Given another connection holding the write lock for a second
            lock = WriteLock(database)
            timer = lock.release_after(1.0)
            # When a flag is disabled, then enabled
            answer = toggle(c, enabled)
            # Then each waited for the lock and was stored: not journaled, not refused
            assert lock.released.is_set()
            timer.join()
            assert answer.status_code == 200, answer.text
            body = answer.json()
            assert body["journal_id"] is None
            assert (body["flag"]["stored_enabled"], body["flag"]["source"]) == (enabled, "stored")
        lock = WriteLock(database)
        timer = lock.release_after(1.0)
        rollback = c.post("/api/feature-flags/emergency-rollback", json={"reason": "busy"})
        timer.join()
        assert rollback.status_code == 200, rollback.text
        assert rollback.json()["verification"] == "success"
        assert_serving_the_store(c)
    assert not (server_dirs.data_dir / "rollback_journal.jsonl").exists()


def test_server__write_lock_longer_than_the_bound__answers_503_busy_and_journals_nothing(
    server_dirs: Server,
) -> None:
    database = start(server_dirs)
    with server_dirs.client() as c:
        assert c.get("/api/feature-flags").status_code == 200  # the token is known: no write
        # Given another connection holding the write lock until the answers are in
        lock = WriteLock(database)
        try:
            # When a flag is disabled (what the journal would take), another enabled (a flag
            # that is on already would be a read: nothing to write), and all rolled back
            answers = [
                toggle(c, False),
                toggle(c, True, "postgresql_support"),
                c.post("/api/feature-flags/emergency-rollback", json={"reason": "busy"}),
            ]
            # Then each is a clear 503 "database busy, retry", never a 500 nor a journal entry
            for answer in answers:
                assert answer.status_code == 503, answer.text
                assert "database busy, retry" in answer.json()["detail"]
                assert answer.headers["retry-after"] == "1"  # clients know when to come back
            # and both workers keep serving the store's state while the lock is held
            for _ in range(6):
                flags = c.get("/api/feature-flags").json()
                assert flags["from_last_known_state"] is False
                assert flags["journaled_rollbacks"] == []
        finally:
            lock.release()
        assert not (server_dirs.data_dir / "rollback_journal.jsonl").exists()
        assert_serving_the_store(c)
        assert c.get(f"/api/feature-flags/{CSRF}").json()["stored_enabled"] is True
