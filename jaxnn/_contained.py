"""Every file a command reads or writes, contained — Chapter 15: a run directory is an artifact
that stands on its own, and untrusted input when it is read back.

A symbolic link planted in a run directory (``checkpoints/_deleted`` pointing at a home
directory, ``summary.json.tmp`` pointing at a file elsewhere, say) would make a sweep or a
retention delete reach outside the run, and a write at a link's name would land in the file it
points at. This module owns every read and write of a run directory, of the book's output and of
the dataset cache, and follows no link:

- a file is written by :func:`replacing` (or :func:`write_replacing`): a new file created with
  ``O_CREAT | O_EXCL | O_NOFOLLOW`` under an unpredictable name in the same folder, then renamed
  over the target (a link at the target's name is replaced, never written through);
- a file that grows (``metrics.jsonl``, TensorBoard events) is opened by :func:`open_new`
  (exclusive) or :func:`open_append` (``O_APPEND | O_NOFOLLOW``);
- a folder jaxnn writes into is made by :func:`ensure_dir`, which refuses a link there;
- a file read back from a run directory is opened by :func:`read_bytes` or :func:`read_text`
  with ``O_NOFOLLOW``, and must be a regular file;
- :func:`check_tree` and :func:`remove_inside` walk and delete with ``lstat``;
- :func:`run_lock` holds ``RUN/.lock`` (``fcntl.flock``) so two trainings never share a run;
- a write the disk refuses (full, quota, read-only) is a :class:`WriteFailed`, one line naming
  the file.

A folder the user names on the command line is theirs: the command line resolves it once (the
``runs/latest`` link included) and passes the real folder here; everything jaxnn then finds or
makes inside it is checked without following links.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import secrets
import shutil
import stat
from pathlib import Path

from jaxnn.errors import UserError

__all__ = [
    "WriteFailed",
    "check_tree",
    "remove_inside",
    "write_replacing",
    "replacing",
    "open_new",
    "open_append",
    "open_read",
    "replacing_name",
    "file_sha256",
    "ensure_dir",
    "refuse_link",
    "read_bytes",
    "read_text",
    "run_lock",
]

_HINT = (
    "jaxnn never follows links in a run directory; remove the link (or put a real copy of the "
    "files in its place) and run again"
)
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
#: the errors that mean "the disk will not take it", as opposed to a bug
WRITE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG)


class WriteFailed(UserError):
    """A write the disk refused (full, over quota, read-only, no permission), naming the file."""


def _refuse(name: str, path) -> None:
    if os.path.islink(path):
        raise UserError(f"{name}: {path} is a symbolic link to {os.readlink(path)}; {_HINT}")
    raise UserError(f"{name}: {path} is neither a file nor a directory; remove it and run again")


def refuse_link(name: str, path) -> None:
    """Raise ``UserError`` if ``path`` is a symbolic link (a missing ``path`` passes)."""
    if os.path.islink(path):
        _refuse(name, path)


@contextlib.contextmanager
def _disk(path):
    """Turn the disk's refusal to write ``path`` into a :class:`WriteFailed`; others pass."""
    try:
        yield
    except OSError as err:
        if isinstance(err, UserError) or err.errno not in WRITE_ERRNOS:
            raise
        raise WriteFailed(
            f"cannot write {path}: {os.strerror(err.errno)}; free space (or make the folder "
            "writable) and run again"
        ) from None


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


def ensure_dir(name: str, path) -> Path:
    """Make the folder ``path`` (and its parents) if missing; refuse a link or a file there.

    Raises:
      UserError: if ``path`` is a symbolic link or not a directory.
      WriteFailed: if the disk refuses to make it.
    """
    path = Path(path)
    with _disk(path):
        if not os.path.lexists(path):
            with contextlib.suppress(FileExistsError):
                path.mkdir(parents=True)
    mode = os.lstat(path).st_mode
    if stat.S_ISLNK(mode):
        _refuse(name, path)
    if not stat.S_ISDIR(mode):
        raise UserError(f"{name}: expected {path} to be a directory, got a file; move it away")
    return path


def new_dir(name: str, root: Path, base: str) -> Path:
    """Make a folder that did not exist in the real folder ``root``: ``base``, else ``base-2``,
    ``base-3``, ... (two runs in one process within one second get one each); whatever is at a
    taken name, a link included, is left alone.

    Raises:
      WriteFailed: if the disk refuses to make it.
      UserError: if ``base`` and ``base-2`` to ``base-999`` are all taken.
    """
    for n in range(1, 1000):
        path = root / (base if n == 1 else f"{base}-{n}")
        try:
            with _disk(path):
                path.mkdir()
        except FileExistsError:
            continue
        return path
    raise UserError(f"{name}: no free folder name {base}-N in {root}; remove old ones")


def _create(path: Path, mode: int = 0o666) -> int:
    """A new file at ``path``: ``O_CREAT | O_EXCL | O_NOFOLLOW`` (the umask applies)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC
    with _disk(path):
        return os.open(path, flags, mode)


@contextlib.contextmanager
def _replaced(path: Path):
    """``(tmp, fd)``: a new file of an unpredictable name beside ``path``, created exclusively
    without following links, renamed over ``path`` when the block ends, removed if it raises."""
    if path.is_dir() and not path.is_symlink():
        raise UserError(f"{path}: expected a file name to write, got a directory")
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    fd = _create(tmp)
    try:
        yield tmp, fd
        with _disk(path):
            os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def replacing(path):
    """Write ``path`` through a binary file object; on success it replaces ``path`` at once.

    The file object is a new file of an unpredictable name (``.NAME.<random>.tmp``) in the same
    folder, created exclusively and without following links; when the block ends it is flushed
    to disk and renamed over ``path`` (a link at ``path`` is replaced, never written through). A
    reader sees the old file or the new one, never half of one. If the block raises, the new file
    is removed and ``path`` is left as it was. The folder is the caller's to trust.

    Raises:
      UserError: if ``path`` is a directory.
      WriteFailed: if the disk refuses the write (the old file is intact).
    """
    path = Path(path)
    with _replaced(path) as (_, fd), os.fdopen(fd, "wb") as f, _disk(path):
        yield f
        f.flush()
        os.fsync(f.fileno())


@contextlib.contextmanager
def replacing_name(path):
    """:func:`replacing` for a writer that opens its file by name: the block gets the name of
    the new, empty file (already created, exclusively), renamed over ``path`` when it ends."""
    path = Path(path)
    with _replaced(path) as (tmp, fd):
        os.close(fd)
        with _disk(path):
            yield tmp


def write_replacing(path: Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` through :func:`replacing`; returns ``path``.

    Raises:
      UserError: if ``path`` is a directory.
      OSError: if the folder is missing (the error names it).
      WriteFailed: if the disk refuses the write (the old file is intact).
    """
    with replacing(path) as f:
        f.write(data)
    return Path(path)


class _Growing:
    """A file that only grows, each write flushed; the disk's refusal is a :class:`WriteFailed`."""

    def __init__(self, path: Path, fd: int):
        self.path, self._file = path, os.fdopen(fd, "ab")

    def write(self, data: bytes | str) -> None:
        """Write ``data`` (text is UTF-8) and push it to the operating system."""
        with _disk(self.path):
            self._file.write(data.encode() if isinstance(data, str) else data)
            self._file.flush()

    def flush(self) -> None:
        """Push what was written to the operating system (each write already does)."""
        with _disk(self.path):
            self._file.flush()

    def close(self) -> None:
        """Close the file (a refused final flush is still reported)."""
        with _disk(self.path):
            self._file.close()


def open_new(path) -> _Growing:
    """A new file at ``path`` to append to: created exclusively, never through a link.

    Raises:
      FileExistsError: if anything (a link included) is at ``path``.
      WriteFailed: if the disk refuses it.
    """
    path = Path(path)
    return _Growing(path, _create(path, 0o644))


def open_append(path) -> _Growing:
    """``path`` opened to append (made if missing), refusing a link at its name.

    Raises:
      UserError: if ``path`` is a symbolic link or not a regular file.
      WriteFailed: if the disk refuses it.
    """
    path = Path(path)
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | _NOFOLLOW | _CLOEXEC
    fd = _open_checked(path, flags, "open_append")
    return _Growing(path, fd)


def _open_checked(path: Path, flags: int, name: str) -> int:
    """``os.open`` without following a link at ``path``; the result must be a regular file."""
    try:
        with _disk(path):
            fd = os.open(path, flags | os.O_NONBLOCK, 0o644)  # a FIFO must not block the open
    except OSError as err:
        if err.errno == errno.ELOOP or os.path.islink(path):
            _refuse(name, path)
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        _refuse(name, path)
    os.set_blocking(fd, True)
    return fd


def read_bytes(path, *, name: str = "read") -> bytes:
    """The bytes of the regular file ``path``, opened with ``O_NOFOLLOW``.

    Raises:
      FileNotFoundError: if nothing is at ``path``.
      UserError: if ``path`` is a symbolic link or not a regular file.
    """
    fd = _open_checked(Path(path), os.O_RDONLY | _NOFOLLOW | _CLOEXEC, name)
    with os.fdopen(fd, "rb") as f:
        return f.read()


def open_read(path, *, name: str = "read"):
    """The regular file ``path`` opened for binary reading with ``O_NOFOLLOW`` (a file object).

    Raises:
      FileNotFoundError: if nothing is at ``path``.
      UserError: if ``path`` is a symbolic link or not a regular file.
    """
    fd = _open_checked(Path(path), os.O_RDONLY | _NOFOLLOW | _CLOEXEC, name)
    return os.fdopen(fd, "rb")


def file_sha256(path, *, name: str = "read") -> str:
    """The SHA-256 hex digest of the regular file ``path`` (opened with ``O_NOFOLLOW``)."""
    digest = hashlib.sha256()
    with open_read(path, name=name) as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_text(path, *, name: str = "read") -> str:
    """:func:`read_bytes` decoded as UTF-8 (``UnicodeDecodeError`` for other bytes)."""
    return read_bytes(path, name=name).decode("utf-8")


@contextlib.contextmanager
def run_lock(name: str, directory):
    """Hold ``directory/.lock`` for the block: a second holder is refused with one line.

    The lock is ``fcntl.flock`` on a file opened with ``O_NOFOLLOW``; it belongs to the open file,
    so it ends with the process however the process ends (a crash or SIGKILL included) and a
    stale lock file never blocks a later run. The file keeps the holder's pid, for the message.

    Raises:
      UserError: if another process holds the lock, or ``.lock`` is a link.
    """
    import fcntl

    path = Path(directory) / ".lock"
    fd = _open_checked(path, os.O_RDWR | os.O_CREAT | _NOFOLLOW | _CLOEXEC, name)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            raise UserError(
                f"{name}: {directory} is in use by another `jaxnn train` (pid {holder}); wait for "
                "it to end, or choose another --out"
            ) from None
        with _disk(path):
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield path
    finally:
        os.close(fd)  # releases the lock
