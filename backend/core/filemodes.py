"""Owner-only files: data/ and logs/ hold password and token hashes, sealed AWS credentials,
signing keys, backups of all that, and logs, so they are readable by the account that runs
PCM-Ops Tools only (files 0600, directories 0700)."""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Collection
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from backend.core.config import Settings

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


def _writable_by_others(path: Path) -> bool:
    try:
        st = os.lstat(path)
    except OSError:
        return False
    return not stat.S_ISLNK(st.st_mode) and bool(st.st_mode & 0o022)


def tighten_tree(*roots: Path, vouching: Collection[Path] = ()) -> list[Path]:
    """Make every directory under `roots` 0700 and every file 0600 where group or others had
    access (trees that an older version created 0755/0644); symlinks are left alone. Returns
    what was changed; what cannot be changed is logged.

    `vouching` files are trusted for their mode (the admin token file): one that others could
    write is left as it is, so that a chmod never makes trusted what someone else wrote."""
    changed: list[Path] = []
    suspect = {p for p in vouching if _writable_by_others(p)}
    for path in sorted(suspect):
        log.error(
            "%s is writable by other users: left as it is and not trusted until checked"
            " against the database",
            path,
        )
    for root in roots:
        if not root.is_dir() or root.is_symlink() or root.stat().st_mode & stat.S_ISVTX:
            continue
        for current, dirs, files in os.walk(root):
            here = Path(current)
            entries = [(here, DIR_MODE)] if here == root else []
            entries += [(here / d, DIR_MODE) for d in dirs]
            entries += [(here / f, FILE_MODE) for f in files]
            for path, mode in entries:
                if path in suspect:
                    continue
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


def tighten_private_dirs(settings: Settings) -> list[Path]:
    """tighten_tree on data/ and logs/, the admin token file vouching (degraded sign-in
    trusts it only while it is owner-only: backend.security.tokens.admin_file_principal)."""
    return tighten_tree(settings.data_dir, settings.log_dir, vouching=[settings.admin_token_path])
