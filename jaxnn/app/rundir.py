"""Where ``jaxnn train`` writes — Chapter 15: one run, one directory, never overwritten.

- Without ``--out`` each run gets a fresh directory ``runs/<model>-<dataset>-<N>`` (the next
  free ``N``, made exclusively, so two runs started at once never share one), and
  ``runs/latest`` becomes a symbolic link to it: ``jaxnn eval --out runs/latest`` reads the last
  run, ``jaxnn train --resume`` continues it. A link rather than a text file so that every
  command, and every other tool (TensorBoard, a file manager), reads ``runs/latest`` as the run
  itself. A ``runs/latest`` that is a real directory (a run of an older jaxnn) is left alone.
- An ``--out`` that holds a run (its config, metrics, summary or checkpoints) is refused unless
  ``--resume`` continues it or ``--overwrite`` replaces it; ``--overwrite`` removes only what a
  run writes (:data:`jaxnn.train.run.ENTRIES`), never a user's other files.
- ``--out`` may name a link the user made (``runs/latest`` is one): it is resolved once, here,
  and the real directory is used from then on. Inside it nothing is followed: a link at a name a
  run writes or reads is refused before any work (:func:`jaxnn.train.run.check_entries`).
- ``RUN/.lock`` is held while the run trains (:func:`jaxnn._contained.run_lock`): a second
  ``jaxnn train`` into the same directory is refused with one line.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
from pathlib import Path

from jaxnn import _contained
from jaxnn.errors import UserError
from jaxnn.train import run as run_lib

__all__ = [
    "RUNS", "LATEST", "named", "fresh", "point_latest", "latest_target", "remove_if_empty",
    "claim",
]  # fmt: skip

RUNS = Path("runs")
LATEST = "latest"


def named(out: str, *, resume: bool) -> Path | None:
    """The directory an ``--out`` names, a link resolved once; ``None``: a fresh run directory.

    Without ``--out``, ``--resume`` continues ``runs/latest``.
    """
    if not out:
        if not resume:
            return None
        out = str(RUNS / LATEST)
    path = Path(out)
    if path.is_symlink():
        path = Path(os.path.realpath(path))
    if path.exists() and not path.is_dir():
        raise UserError(f"--out {out}: expected a directory, got a file; choose another --out")
    return path


def _slug(text: str) -> str:
    """A name part from a model or dataset: ``csv:/data/wine.csv`` -> ``wine``."""
    tail = text.rsplit(":", 1)[-1].rstrip("/") or text
    if "/" in tail or "." in tail:
        tail = Path(tail).stem or Path(tail).name
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", tail).strip("._") or "data"


def fresh(model: str, dataset: str, *, root: Path = RUNS) -> Path:
    """Make and return the next free ``root/<model>-<dataset>-<N>`` (``N`` from 1)."""
    root = root if root.is_symlink() else _contained.ensure_dir("train", root)
    prefix = f"{_slug(model)}-{_slug(dataset)}-"
    pattern = re.compile(re.escape(prefix) + r"(\d+)$")
    taken = [int(m.group(1)) for p in root.iterdir() if (m := pattern.match(p.name))]
    n = max(taken, default=0) + 1
    while True:
        path = root / f"{prefix}{n}"
        try:
            path.mkdir()  # exclusive: a run started at the same moment takes the next N
            return path
        except FileExistsError:
            n += 1


def point_latest(run: Path, *, root: Path = RUNS) -> str:
    """Make ``root/latest`` a link to ``run`` (replaced at once); returns a note, or ``""``.

    A ``latest`` that is a real directory or file is left as it is (the note says so).
    """
    latest = root / LATEST
    if os.path.lexists(latest) and not latest.is_symlink():
        return f"{latest} is not a link (a run of an older jaxnn?); left as it is"
    _link(latest, run.name)
    return ""


def _link(latest: Path, target: str) -> None:
    tmp = latest.with_name(f".{LATEST}.{secrets.token_hex(6)}")
    os.symlink(target, tmp, target_is_directory=True)
    os.replace(tmp, latest)


def remove_if_empty(run: Path, *, previous: str | None = None, root: Path = RUNS) -> None:
    """Remove the fresh run directory ``run`` when a refusal left nothing in it but its lock,
    and point ``root/latest`` back at ``previous`` if it had been pointed at ``run``."""
    with contextlib.suppress(OSError):
        lock = run / ".lock"
        if lock.is_file() and not lock.is_symlink():
            lock.unlink()
        run.rmdir()  # only if empty
        latest = root / LATEST
        if latest.is_symlink() and os.readlink(latest) == run.name:
            if previous:
                _link(latest, previous)
            else:
                latest.unlink()


def latest_target(root: Path = RUNS) -> str | None:
    """Where ``root/latest`` points now (``None``: not a link)."""
    latest = root / LATEST
    return os.readlink(latest) if latest.is_symlink() else None


@contextlib.contextmanager
def claim(out: Path, *, resume: bool, overwrite: bool, main: bool = True):
    """Hold ``out`` for one training: checked, locked and, with ``overwrite``, emptied of the
    previous run; yields ``out``. ``main`` is False on processes other than 0 of a
    multi-process run, which share process 0's directory and leave it to process 0.

    Raises:
      UserError: a link at a name a run uses, an ``out`` that holds a run without ``resume`` or
        ``overwrite``, or another ``jaxnn train`` holding it.
    """
    if resume and overwrite:
        raise UserError("--overwrite: expected either --resume or --overwrite, got both")
    if not main:
        yield out
        return
    _contained.ensure_dir("--out", out)
    run_lib.check_entries(f"--out {out}", out)
    with _contained.run_lock("jaxnn train", out):
        if run_lib.holds_run(out) and not resume:
            if not overwrite:
                raise UserError(
                    f"--out {out}: holds a run already (config, metrics or checkpoints); pass "
                    "--resume to continue it, --overwrite to replace it, or choose another --out"
                )
            run_lib.remove_entries("--overwrite", out)
        yield out
