"""CLI tables: identifiers (names, ids, file names, flags, tags) are never cut, in an
80-column terminal (a real pseudo-terminal) or piped, and every list has --json."""

from __future__ import annotations

import fcntl
import io
import json
import os
import re
import struct
import subprocess
import termios

import pytest
from rich.console import Console

from backend.cli.console import print_table
from tests.e2e.conftest import ROOT, clean_env

PCM = str(ROOT / ".venv" / "bin" / "pcm-ops")
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
LONG_TOKEN = "grafana-production-readonly-scraper"
LONG_USER = "operator.with.a.long.name"


def run_in_terminal(args: list[str], env: dict[str, str], columns: int = 80) -> str:
    """`args` on a real pseudo-terminal `columns` wide: what an operator's screen shows."""
    main, side = os.openpty()
    fcntl.ioctl(side, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
    with subprocess.Popen(
        args, stdin=side, stdout=side, stderr=subprocess.DEVNULL, env=env, close_fds=True
    ) as proc:
        os.close(side)
        out = b""
        while True:
            try:
                chunk = os.read(main, 65536)
            except OSError:  # EIO: the program ended and closed its side
                break
            if not chunk:
                break
            out += chunk
        proc.wait(timeout=60)
    os.close(main)
    return ANSI.sub("", out.decode()).replace("\r\n", "\n")


def run_piped(args: list[str], env: dict[str, str]) -> str:
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A data directory with backups, records, a long-named token and user, a snapshot."""
    tmp = tmp_path_factory.mktemp("tables")
    env = {**clean_env(tmp, 9), "COLUMNS": "80"}  # port 9: nothing answers, local reads
    repo = tmp / "repo"
    repo.mkdir()
    for args in (["init", "-q", "-b", "main"], ["commit", "-q", "--allow-empty", "-m", "x"]):
        subprocess.run(
            ["git", "-c", "user.name=t", "-c", "user.email=t@x.invalid", *args],
            cwd=repo,
            check=True,
        )
    steps = [
        ["db", "init"],
        ["db", "backup", "--note", "before the csrf change, a note long enough to wrap twice"],
        ["rollback", "emergency", "--reason", "error rate over 50% after the deploy at 11:40"],
        ["token", "create", LONG_TOKEN, "--role", "viewer"],
        ["snapshot", "--repo", str(repo), "--note", "a snapshot taken before a risky change"],
    ]
    for step in steps:
        run_piped([PCM, *step], env)
    created = subprocess.run(
        [PCM, "user", "create", LONG_USER, "--role", "operator", "--password-stdin"],
        input="a long enough password\n",
        env=env,
        capture_output=True,
        text=True,
    )
    assert created.returncode == 0, created.stderr
    return env


def identifiers(env: dict[str, str]) -> dict[str, list[str]]:
    """What each list shows that an operator types next, read from its --json."""

    def js(*args: str) -> object:
        return json.loads(run_piped([PCM, *args, "--json"], env))

    backups = js("db", "list")
    flags = js("flags", "list")
    snapshots = js("snapshot", "--list")
    assert isinstance(backups, list) and isinstance(flags, dict) and isinstance(snapshots, list)
    return {
        "db list": [b["file"] for b in backups],
        "flags list": [f["name"] for f in flags["flags"]],
        "records list": [str(r["id"]) for r in js("records", "list")],  # type: ignore[attr-defined]
        "token list": [t["name"] for t in js("token", "list")],  # type: ignore[attr-defined]
        "user list": [u["username"] for u in js("user", "list")],  # type: ignore[attr-defined]
        "snapshot --list": [s["tag"] for s in snapshots] + [s["backup"] for s in snapshots],
    }


def test_every_list__at_80_columns_in_a_terminal_and_piped__shows_identifiers_whole(
    env: dict[str, str],
) -> None:
    # Given the identifiers each list holds (its --json says which), long ones among them
    wanted = identifiers(env)
    assert any(name.startswith("pcm_ops_tools_backup_2") for name in wanted["db list"])
    assert LONG_TOKEN in wanted["token list"] and LONG_USER in wanted["user list"]
    for command, names in wanted.items():
        # When the list is shown on an 80-column terminal, and piped
        screen = run_in_terminal([PCM, *command.split()], env)
        piped = run_piped([PCM, *command.split()], env)
        # Then every identifier is on one line, whole, and the screen is 80 columns wide
        for output, where in ((screen, "terminal"), (piped, "pipe")):
            lines = output.splitlines()
            for name in names:
                assert any(
                    re.search(rf"(^|[\s│┃]){re.escape(name)}($|[\s│┃])", line) for line in lines
                ), (command, where, name, output)
            assert "…" not in output, (command, where, output)
        assert max(len(line.rstrip()) for line in screen.splitlines()) <= 80, (command, screen)


def render(width: int, terminal: bool, rows: list[tuple[str, ...]]) -> str:
    buffer = io.StringIO()
    out = Console(file=buffer, width=width, force_terminal=terminal, color_system=None)
    print_table(("name", "note"), rows, ids={"name"}, out=out)
    return buffer.getvalue()


def test_print_table__too_narrow_for_a_table__one_block_per_row_names_whole() -> None:
    name = "pcm_ops_tools_backup_20250824_130509.db"
    text = render(46, True, [(name, "a note that wraps " * 4)])
    assert f"name  {name}" in text
    assert max(len(line) for line in text.splitlines()) <= 46


def test_print_table__not_a_terminal__each_row_on_one_line_however_long() -> None:
    note = "a note that would wrap " * 6
    text = render(40, False, [("xss_protection_enabled", note)])
    (row,) = [line for line in text.splitlines() if "xss_protection_enabled" in line]
    assert note.strip() in row
    assert "[bold]" in render(40, False, [("[bold]", "x")])  # plain text, never markup
