"""Owner-only files: data/ and logs/ hold password and token hashes, sealed AWS credentials,
signing keys, backups of all that, and logs, so they are readable by the account that runs
PCM-Ops Tools only (files 0600, directories 0700)."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

log = logging.getLogger("pcm_ops_tools.files")

PRIVATE_UMASK = 0o077
FILE_MODE = 0o600
DIR_MODE = 0o700


def restrict_umask() -> None:
    """Make every file this process creates from now on owner-only, SQLite's included."""
    os.umask(PRIVATE_UMASK)


def private_dir(path: Path) -> None:
    """Create `path` (and missing parents) owner-only; tighten it when it exists."""
    path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    _tighten(path, DIR_MODE)


def create_private_file(path: Path) -> None:
    """Create an empty owner-only file unless one exists, which is tightened instead."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, FILE_MODE)
    os.close(fd)
    _tighten(path, FILE_MODE)


def _tighten(path: Path, mode: int) -> bool:
    """chmod `path` to `mode` when group or others have any access; True when it changed.

    Symlinks and shared directories (sticky bit, like /tmp) are never touched."""
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode) or stat.S_IMODE(st.st_mode) & PRIVATE_UMASK == 0:
        return False
    if stat.S_ISDIR(st.st_mode) and st.st_mode & stat.S_ISVTX:
        log.error("%s is a shared directory (sticky bit): not made owner-only", path)
        return False
    os.chmod(path, mode)
    return True


def tighten_tree(*roots: Path) -> list[Path]:
    """Make every directory under `roots` 0700 and every file 0600 where group or others had
    access (trees that an older version created 0755/0644); symlinks are left alone. Returns
    what was changed; what cannot be changed is logged."""
    changed: list[Path] = []
    for root in roots:
        if not root.is_dir() or root.is_symlink() or root.stat().st_mode & stat.S_ISVTX:
            continue
        for current, dirs, files in os.walk(root):
            here = Path(current)
            entries = [(here, DIR_MODE)] if here == root else []
            entries += [(here / d, DIR_MODE) for d in dirs]
            entries += [(here / f, FILE_MODE) for f in files]
            for path, mode in entries:
                try:
                    if _tighten(path, mode):
                        changed.append(path)
                except FileNotFoundError:
                    continue  # removed meanwhile (a temp file)
                except OSError as exc:
                    log.error("could not make %s owner-only: %s", path, exc)
    if changed:
        log.warning(
            "Made %d file(s) and directories owner-only (they were readable by others): %s",
            len(changed),
            ", ".join(str(p) for p in changed[:20]) + (" ..." if len(changed) > 20 else ""),
        )
    return changed
