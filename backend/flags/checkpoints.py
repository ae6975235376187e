"""Signed checkpoints of the audit chain's head, kept outside the database.

After every committed flag change the writer appends one line to a 0600 file in data_dir and
writes the same line to the log: the store version, how many events the chain held, the hash
of the newest one, signed with HMAC-SHA256 under an audit key. Verification then proves that
the chain still holds at least that many events and that the event at that position still has
that hash: deleting the newest events (and fixing the store's count and head) or rewriting
older ones is caught even by someone who has the database but not the key.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from backend.flags.audit_keys import AuditKeys

log = logging.getLogger("pcm_ops_tools.audit")
FORMAT = 1


HEAD = "head"
# A database restored from a backup: the chain legitimately went back to this head, and the
# checkpoints before this line (of the replaced database) no longer apply.
RESTART = "restart"


@dataclass(frozen=True, slots=True)
class Checkpoint:
    at: str
    version: int
    events: int
    head: str
    key_id: str
    mac: str
    kind: str = HEAD
    note: str = ""

    def body(self) -> bytes:
        """What the MAC covers: every field but the MAC, in a fixed order."""
        fields: list[object] = [FORMAT, self.at, self.version, self.events, self.head]
        fields.append(self.key_id)
        if self.kind != HEAD:
            fields += [self.kind, self.note]
        return json.dumps(fields, separators=(",", ":")).encode()

    def line(self) -> str:
        d: dict[str, object] = {
            "v": FORMAT,
            "at": self.at,
            "version": self.version,
            "events": self.events,
            "head": self.head,
            "key": self.key_id,
        }
        if self.kind != HEAD:
            d |= {"kind": self.kind, "note": self.note}
        return json.dumps(d | {"mac": self.mac}, separators=(",", ":"))


@dataclass(frozen=True, slots=True)
class CheckpointRead:
    checkpoints: list[Checkpoint]
    problems: list[str]  # lines that are not valid, signed checkpoints
    exists: bool


class CheckpointLog:
    """The checkpoint file of one installation and the keys that sign its lines."""

    def __init__(self, path: Path, keys: AuditKeys) -> None:
        self.path = path
        self.keys = keys

    def write(
        self, *, version: int, events: int, head: str, kind: str = HEAD, note: str = ""
    ) -> Checkpoint:
        """Sign and append a checkpoint (one write of one line, O_APPEND: processes sharing
        the file never interleave), and log it."""
        at = datetime.now(UTC).isoformat(timespec="milliseconds")
        key_id = self.keys.active_id
        unsigned = Checkpoint(at, version, events, head, key_id, "", kind, note)
        cp = dataclasses.replace(unsigned, mac=self.keys.sign(unsigned.body()))
        line = cp.line()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, (line + "\n").encode())
        finally:
            os.close(fd)
        log.info("Audit checkpoint %s", line)
        return cp

    def read(self) -> CheckpointRead:
        """Every checkpoint whose signature holds, and what is wrong with the other lines."""
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return CheckpointRead([], [], exists=False)
        found: list[Checkpoint] = []
        problems: list[str] = []
        for number, raw in enumerate(text.splitlines(), start=1):
            if not raw.strip():
                continue
            where = f"{self.path.name} line {number}"
            try:
                d = json.loads(raw)
                cp = Checkpoint(
                    str(d["at"]),
                    int(d["version"]),
                    int(d["events"]),
                    str(d["head"]),
                    str(d["key"]),
                    str(d["mac"]),
                    str(d.get("kind", HEAD)),
                    str(d.get("note", "")),
                )
            except (ValueError, KeyError, TypeError):
                # A crash while appending can leave a partial last line: not tampering.
                if number == len(text.splitlines()) and not text.endswith("\n"):
                    continue
                problems.append(f"checkpoint {where} is not a checkpoint (edited)")
                continue
            valid = self.keys.check(cp.body(), cp.key_id, cp.mac)
            if valid is None:
                problems.append(
                    f"checkpoint {where} is signed with key {cp.key_id!r}, "
                    "which is not in the audit key ring: cannot check it"
                )
            elif not valid:
                problems.append(f"checkpoint {where}: signature does not match (edited)")
            elif cp.kind == RESTART:
                found = [cp]  # what came before described the database that was replaced
            else:
                found.append(cp)
        return CheckpointRead(found, problems, exists=True)
