"""A run directory is untrusted input: walk it without following links, delete only inside it,
write a file by replacing it, never through a link.

A symbolic link planted in a run directory (``checkpoints/_deleted`` pointing at a home
directory, say) would make a sweep or a retention delete reach outside the run, and a link at a
file's name would make a write land in the file it points at. Every check here uses ``lstat``:
nothing is followed.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import stat
from pathlib import Path

from jaxnn.errors import UserError

__all__ = ["check_tree", "remove_inside", "write_replacing"]

_HINT = (
    "jaxnn never follows links in a run directory; remove the link (or put a real copy of the "
    "files in its place) and run again"
)


def _refuse(name: str, path) -> None:
    if os.path.islink(path):
        raise UserError(f"{name}: {path} is a symbolic link to {os.readlink(path)}; {_HINT}")
    raise UserError(f"{name}: {path} is neither a file nor a directory; remove it and run again")


def check_tree(name: str, root: Path) -> None:
    """Raise ``UserError`` if ``root`` or anything under it is a link or not a file or directory.

    A missing ``root`` passes. ``name`` (the caller) starts the message.
    """
    if not os.path.lexists(root):
        return
    mode = os.lstat(root).st_mode
    if stat.S_ISREG(mode):
        raise UserError(
            f"{name}: expected {root} to be a directory, got a file; pass another directory "
            "or move the file away"
        )
    if not stat.S_ISDIR(mode):
        _refuse(name, root)
    pending = [root]
    while pending:
        try:
            entries = list(os.scandir(pending.pop()))
        except FileNotFoundError:  # removed meanwhile by another process: nothing to check
            continue
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                pending.append(Path(entry.path))
            elif entry.is_symlink() or not entry.is_file(follow_symlinks=False):
                _refuse(name, entry.path)


def remove_inside(name: str, root: Path, path: Path) -> None:
    """Delete the real directory (or file) ``path`` that lies inside ``root``; never a link."""
    if os.path.islink(path) or not path.resolve().is_relative_to(root.resolve()):
        raise UserError(
            f"{name}: refusing to delete {path}: it is a link or lies outside {root}; remove it "
            "by hand after checking where it points"
        )
    if stat.S_ISDIR(os.lstat(path).st_mode):
        shutil.rmtree(path)
    else:
        os.unlink(path)


def write_replacing(path: Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a new file in the same folder, then rename it there.

    A reader sees the old file or the new one, never half of one. The new file is created with
    ``O_EXCL | O_NOFOLLOW`` and renamed over ``path``, which replaces whatever name ``path`` was
    (a symbolic link included) and never writes through it. The folder itself is the caller's
    to trust.

    Raises:
      UserError: if ``path`` is a directory.
      OSError: if the folder is missing or not writable (the error names it).
    """
    path = Path(path)
    if path.is_dir() and not path.is_symlink():
        raise UserError(f"{path}: expected a file name to write, got a directory")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, flags, 0o666)  # the umask applies, as for any new file
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path
