"""A run directory is untrusted input: walk it without following links, delete only inside it.

A symbolic link planted in a run directory (``checkpoints/_deleted`` pointing at a home
directory, say) would make a sweep or a retention delete reach outside the run. Every check
here uses ``lstat``: nothing is followed.
"""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

from jaxnn.errors import UserError

__all__ = ["check_tree", "remove_inside"]

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
