"""Owner-only files: trees left readable by older versions are tightened, files written by our
helpers are 0600 whatever the umask, and nothing outside our own files is touched."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from backend.core.filemodes import create_private_file, private_dir, tighten_tree
from backend.core.log import configure_logging
from backend.db.manifest import Manifest
from backend.flags.last_known import FlagRecord, save


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


@pytest.fixture
def permissive_umask() -> Iterator[None]:
    """The usual umask of a shell (022), so that only our own code can make files 0600."""
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


def test_tighten_tree__older_0755_and_0644_tree__every_dir_0700_and_file_0600(
    tmp_path: Path,
) -> None:
    # Given a data directory as an older version left it
    data = tmp_path / "data"
    (data / "old_backups").mkdir(parents=True)
    for d in (data, data / "old_backups"):
        d.chmod(0o755)
    files = [data / "pcm_ops_tools.db", data / "backups.json", data / "old_backups" / "a.db"]
    for f in files:
        f.write_text("x")
        f.chmod(0o644)
    (data / "run.sh").write_text("x")
    (data / "run.sh").chmod(0o755)

    # When
    changed = tighten_tree(data)

    # Then
    assert {mode(d) for d in (data, data / "old_backups")} == {0o700}
    assert {mode(f) for f in [*files, data / "run.sh"]} == {0o600}
    assert len(changed) == 6
    assert tighten_tree(data) == []  # nothing left to do


def test_tighten_tree__symlink_to_an_outside_file__target_left_alone(tmp_path: Path) -> None:
    # Given a symlink in data/ to a file that is not ours to change
    outside = tmp_path / "shared.txt"
    outside.write_text("x")
    outside.chmod(0o644)
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    (data / "link").symlink_to(outside)

    # When
    tighten_tree(data)

    # Then
    assert mode(outside) == 0o644


def test_tighten_tree__shared_sticky_directory__not_touched(tmp_path: Path) -> None:
    # Given PCM_DATA_DIR pointed at a shared directory such as /tmp (sticky bit)
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)

    # When
    tighten_tree(shared)
    private_dir(shared)

    # Then
    assert mode(shared) == 0o1777


def test_private_dir_and_file__permissive_umask__created_owner_only(
    tmp_path: Path, permissive_umask: None
) -> None:
    # When
    private_dir(tmp_path / "a" / "b")
    create_private_file(tmp_path / "a" / "b" / "f")

    # Then
    assert mode(tmp_path / "a" / "b") == 0o700
    assert mode(tmp_path / "a" / "b" / "f") == 0o600


def test_configure_logging__permissive_umask__log_dir_0700_and_file_0600(
    tmp_path: Path, permissive_umask: None
) -> None:
    # Given an older log file readable by everyone
    logs = tmp_path / "logs"
    logs.mkdir(mode=0o755)
    (logs / "pcm_ops_tools.log").write_text("old line\n")
    (logs / "pcm_ops_tools.log").chmod(0o644)

    # When
    configure_logging(logs / "pcm_ops_tools.log")

    # Then
    assert (mode(logs), mode(logs / "pcm_ops_tools.log")) == (0o700, 0o600)
    assert (logs / "pcm_ops_tools.log").read_text() == "old line\n"


def test_last_known_state_and_manifests__permissive_umask__written_0600(
    tmp_path: Path, permissive_umask: None
) -> None:
    # When the flag state and a backup record are written
    record = FlagRecord("f", True, False, False, "", 1, "low", "2026-01-01T00:00:00+00:00", "t")
    assert save(tmp_path / "flags_last_known.json", 3, [record])
    Manifest(tmp_path / "backups.json").append({"file": "b.db"})

    # Then every file they made is owner-only (the lock file included)
    made = sorted(p.name for p in tmp_path.iterdir())
    assert made == [".backups.json.lock", "backups.json", "flags_last_known.json"]
    assert {p.name: mode(p) for p in tmp_path.iterdir()} == dict.fromkeys(made, 0o600)


def test_tighten_tree__vouching_file_writable_by_others__left_untrusted(tmp_path: Path) -> None:
    # Given an admin token file that another user could have written, and one only read
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    written, read = data / "admin_token", data / "other_token"
    for f, m in ((written, 0o666), (read, 0o644)):
        f.write_text("pcm_x")
        f.chmod(m)

    # When
    tighten_tree(data, vouching=[written, read])

    # Then a chmod does not make the first one trusted; the second is made owner-only
    assert (mode(written), mode(read)) == (0o666, 0o600)
