"""Checkpoints — Chapter 15: save the training state, keep the best, resume after a failure.

The book's two reasons for checkpoints are recovery from failures and selecting the
best-validation model. :class:`CheckpointManager` wraps ``orbax.checkpoint.CheckpointManager`` for
both:

- A checkpoint is one directory ``<directory>/<step>/`` holding the state pytree (``state/``, the
  arrays: step, params, optimizer state, RNG key data, model state), a JSON dict ``extra/`` (epoch,
  position in the epoch, best-so-far, config), the validation ``metrics/`` and a ``digest/`` with a
  SHA-256 checksum of every array and of ``extra``.
- A save is atomic: orbax writes ``<step>.orbax-checkpoint-tmp*/`` and renames it to ``<step>/``
  once every file is written, so a process killed mid-save leaves either no ``<step>/`` or a
  complete one. :meth:`CheckpointManager.save` then fsyncs the files, so a returned save is durable.
  (orbax renames before that fsync: after a power loss in between, ``<step>/`` may exist with
  missing bytes; the checksums catch that and restore falls back.)
- Retention keeps the newest ``keep_last`` checkpoints and the best ``keep_best`` by a validation
  metric (a checkpoint may be both). A checkpoint being removed is first renamed out of the way
  (atomic) and only then deleted, so a kill never leaves a half-deleted ``<step>/`` behind.
- :meth:`CheckpointManager.restore` verifies the checksums; a latest checkpoint that is truncated
  or corrupt is reported with a warning and the previous complete one is restored instead.

RNG keys must be stored as raw key data (``jax.random.key_data(key)``, ``uint32``), so the state is
plain arrays.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import stat
import warnings
from pathlib import Path
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp
from orbax.checkpoint import checkpoint_managers

from jaxnn._checks import check_positive_int
from jaxnn.errors import UserError

__all__ = ["CheckpointManager"]

_STATE, _EXTRA, _DIGEST = "state", "extra", "digest"
_DELETED = "_deleted"  # retention renames doomed steps here, then they are removed
_TMP_MARK = ".orbax-checkpoint-tmp"  # orbax's suffix for a save in progress
_MODES = ("max", "min")


def _metric_value(metrics, *, key: str, mode: str) -> float:
    """The ranking value of a checkpoint's metrics; NaN or missing ranks worst."""
    worst = -math.inf if mode == "max" else math.inf
    value = metrics.get(key) if isinstance(metrics, dict) else None
    if value is None:
        return worst
    value = float(value)
    return worst if math.isnan(value) else value


def _to_json(name: str, what: str, value: dict) -> dict:
    """``value`` as plain JSON types (NumPy/JAX scalars become Python numbers)."""

    def default(obj):
        if isinstance(obj, (np.generic, np.ndarray, jax.Array)) and np.size(obj) == 1:
            return np.asarray(obj).item()
        raise TypeError(f"{type(obj).__name__} is not JSON serializable")

    if not isinstance(value, dict):
        raise ValueError(f"{name}: expected {what} to be a dict, got {type(value).__name__}")
    try:
        return json.loads(json.dumps(value, default=default))
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name}: expected {what} to be JSON-serializable, got {err}") from None


def _check_state(state) -> None:
    for path, leaf in jax.tree_util.tree_leaves_with_path(state):
        where = jax.tree_util.keystr(path) or "<root>"
        if not isinstance(leaf, (jax.Array, np.ndarray)):
            raise ValueError(
                f"CheckpointManager.save: expected a pytree of arrays, got {type(leaf).__name__} "
                f"at state{where}"
            )
        if jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.extended):
            raise ValueError(
                f"CheckpointManager.save: expected plain arrays, got dtype {leaf.dtype} at "
                f"state{where}; store a PRNG key as jax.random.key_data(key)"
            )


def _sha256_arrays(state) -> dict:
    """``{leaf path: {"sha256", "shape", "dtype"}}`` for every host-readable array of ``state``."""
    out = {}
    for path, leaf in jax.tree_util.tree_leaves_with_path(state):
        if isinstance(leaf, jax.Array) and not leaf.is_fully_addressable:
            continue  # sharded across hosts: no single process sees all of it
        host = np.ascontiguousarray(jax.device_get(leaf))
        out[jax.tree_util.keystr(path)] = {
            "sha256": hashlib.sha256(host.tobytes()).hexdigest(),
            "shape": list(host.shape),
            "dtype": str(host.dtype),
        }
    return out


def _sha256_json(value) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()


def _digest(state, extra: dict) -> dict:
    """The checksums saved with a checkpoint: one per array of ``state``, one for ``extra``."""
    return {"arrays": _sha256_arrays(state), "extra": _sha256_json(extra)}


def _verify(state, extra: dict, saved: dict) -> None:
    """Raise ``ValueError`` naming the first item whose bytes differ from the saved checksum."""
    if saved.get("extra", _sha256_json(extra)) != _sha256_json(extra):
        raise ValueError("extra does not match its saved SHA-256 checksum")
    current = _sha256_arrays(state)
    for where, want in saved.get("arrays", {}).items():
        got = current.get(where)
        if got is None or got["shape"] != want["shape"] or got["dtype"] != want["dtype"]:
            continue  # restored into another shape or dtype: bytes are not comparable
        if got["sha256"] != want["sha256"]:
            raise ValueError(f"array state{where} does not match its saved SHA-256 checksum")


def _fsync_tree(root: Path) -> None:
    """Flush every file and directory under ``root``, and ``root``'s parent, to stable storage."""
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            fd = os.open(os.path.join(dirpath, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
    for directory in [*(p for p, _, _ in os.walk(root)), root.parent]:
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _check_contained(root: Path) -> None:
    """Raise ``UserError`` if ``root`` or anything under it is a link or not a file or directory.

    A run directory is untrusted input: a symbolic link inside it (``_deleted``, a step, a
    temporary save) would make a save, a retention delete or a sweep write or delete outside it.
    Nothing under ``root`` is followed: the walk uses ``lstat`` only.
    """
    hint = (
        "jaxnn never follows links in a checkpoint directory; remove the link (or put a real "
        "copy of the files in its place) and run again"
    )
    if os.path.islink(root):
        raise UserError(
            f"CheckpointManager: {root} is a symbolic link to {os.readlink(root)}; {hint}"
        )
    if not os.path.lexists(root):
        return
    if not stat.S_ISDIR(os.lstat(root).st_mode):
        raise UserError(
            f"CheckpointManager: expected {root} to be a directory, got a file; "
            "pass another directory or move the file away"
        )
    pending = [root]
    while pending:
        with os.scandir(pending.pop()) as entries:
            for entry in entries:
                if entry.is_symlink():
                    raise UserError(
                        f"CheckpointManager: {entry.path} in {root} is a symbolic link to "
                        f"{os.readlink(entry.path)}; {hint}"
                    )
                if entry.is_dir(follow_symlinks=False):
                    pending.append(Path(entry.path))
                elif not entry.is_file(follow_symlinks=False):
                    raise UserError(
                        f"CheckpointManager: {entry.path} in {root} is neither a file nor a "
                        "directory; remove it and run again"
                    )


def _remove_inside(root: Path, path: Path) -> None:
    """``rmtree`` a real directory (or unlink a file) that lies inside ``root``; never a link."""
    if os.path.islink(path) or not path.resolve().is_relative_to(root.resolve()):
        raise UserError(
            f"CheckpointManager: refusing to delete {path}: it is a link or lies outside {root}; "
            "remove it by hand after checking where it points"
        )
    if stat.S_ISDIR(os.lstat(path).st_mode):
        shutil.rmtree(path)
    else:
        os.unlink(path)


class _OrbaxManager(ocp.CheckpointManager):
    """orbax's manager, tolerant of an unreadable metrics file: that step is then unranked."""

    def _get_metrics(self, step: int):
        try:
            return super()._get_metrics(step)
        except ValueError as err:  # json.JSONDecodeError: truncated or garbled metrics
            warnings.warn(
                f"CheckpointManager: the metrics of step {step} in {self.directory} are "
                f"unreadable ({_reason(err)}); the step is not ranked as a best checkpoint",
                stacklevel=2,
            )
            return None


class CheckpointManager:
    """Save, keep and restore training checkpoints in one directory (Chapter 15).

    Keeps the newest ``keep_last`` checkpoints and the ``keep_best`` best by
    ``metrics[best_metric]`` (``best_mode="max"``: higher is better; ``"min"``: lower is better;
    NaN ranks worst). A checkpoint saved without metrics is kept only while it is among the
    newest. One process writes to a directory at a time; any number may read it.

    Example::

        manager = CheckpointManager(run_dir / "checkpoints", keep_last=2, keep_best=1)
        manager.save(step, state, extra={"epoch": epoch}, metrics={"val_accuracy": acc})
        state, extra = manager.restore(target=state)  # the latest complete checkpoint

    Args:
      directory: where the checkpoints live (created if missing).
      keep_last: how many of the newest checkpoints to keep (positive int).
      keep_best: how many of the best checkpoints to keep (non-negative int).
      best_metric: the key of ``metrics`` that ranks checkpoints.
      best_mode: ``"max"`` or ``"min"``.

    Raises:
      ValueError: for a non-positive ``keep_last``, a negative ``keep_best``, an empty
        ``best_metric`` or an unknown ``best_mode``.
    """

    def __init__(
        self,
        directory,
        *,
        keep_last: int = 3,
        keep_best: int = 1,
        best_metric: str = "val_accuracy",
        best_mode: str = "max",
    ):
        name = "CheckpointManager"
        self.keep_last = check_positive_int(name, keep_last, "keep_last")
        if isinstance(keep_best, bool) or not isinstance(keep_best, int) or keep_best < 0:
            raise ValueError(
                f"{name}: expected keep_best to be a non-negative int, got {keep_best!r}"
            )
        if not isinstance(best_metric, str) or not best_metric:
            raise ValueError(
                f"{name}: expected best_metric to be a metric name, got {best_metric!r}"
            )
        if best_mode not in _MODES:
            raise ValueError(
                f"{name}: expected best_mode in {', '.join(_MODES)}, got {best_mode!r}"
            )
        self.keep_best, self.best_metric, self.best_mode = keep_best, best_metric, best_mode
        self.directory = Path(directory).expanduser().absolute()
        _check_contained(self.directory)

        def rank(metrics):
            return _metric_value(metrics, key=best_metric, mode=best_mode)

        policy = checkpoint_managers.AnyPreservationPolicy(
            [
                checkpoint_managers.LatestN(n=self.keep_last),
                checkpoint_managers.BestN(
                    get_metric_fn=rank,
                    reverse=best_mode == "min",
                    n=keep_best,
                    keep_checkpoints_without_metrics=False,
                ),
            ]
        )
        options = ocp.CheckpointManagerOptions(
            best_fn=rank,
            best_mode=best_mode,
            preservation_policy=policy,
            todelete_subdir=_DELETED,
            enable_async_checkpointing=False,
            create=True,
        )
        self._manager = _OrbaxManager(self.directory, options=options)

    def __enter__(self) -> CheckpointManager:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def steps(self) -> list[int]:
        """The steps of the checkpoints in the directory, oldest first."""
        return sorted(int(s) for s in self._manager.all_steps())

    def latest_step(self) -> int | None:
        """The newest step, or ``None`` if there is no checkpoint."""
        steps = self.steps()
        return steps[-1] if steps else None

    def best_step(self) -> int | None:
        """The step with the best ``best_metric``, or ``None`` if no checkpoint has metrics."""
        best = self._manager.best_step()
        return None if best is None else int(best)

    def metrics(self, step: int) -> dict | None:
        """The metrics saved with ``step``, or ``None`` if it was saved without."""
        return self._manager.metrics(step)

    def save(self, step: int, state, *, extra: dict, metrics: dict | None = None) -> None:
        """Write checkpoint ``step`` and return once it is complete and on stable storage.

        Chapter 15: a checkpoint lets training recover from a failure and lets the best-validation
        model be selected later. The save is atomic (all of ``step`` or none of it), then the
        retention rule removes checkpoints that are neither among the newest ``keep_last`` nor the
        best ``keep_best``. Checkpoints at ``step`` or later (left by an abandoned or crashed run
        that this one resumed before) are replaced, with a warning.

        Args:
          step: the training step (non-negative int), the checkpoint's name.
          state: a pytree of arrays (NamedTuples, dicts, tuples; optax states included).
          extra: a JSON-serializable dict restored alongside (tuples come back as lists).
          metrics: validation metrics including ``best_metric``, or ``None``.

        Raises:
          ValueError: for a negative step, a state leaf that is not an array (or is a typed PRNG
            key), an ``extra``/``metrics`` that is not a JSON dict, or metrics without a numeric
            ``best_metric``.
        """
        name = "CheckpointManager.save"
        if isinstance(step, bool) or not isinstance(step, (int, np.integer)) or step < 0:
            raise ValueError(f"{name}: expected step to be a non-negative int, got {step!r}")
        step = int(step)
        _check_state(state)
        extra = _to_json(name, "extra", extra)
        if metrics is not None:
            metrics = _to_json(name, "metrics", metrics)
            value = metrics.get(self.best_metric)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(
                    f"{name}: expected metrics[{self.best_metric!r}] to be a number, got "
                    f"{value!r} (metrics keys: {sorted(metrics)})"
                )
        _check_contained(self.directory)
        self._sweep()
        stale = [s for s in self.steps() if s >= step]
        if stale:
            warnings.warn(
                f"CheckpointManager: saving step {step} replaces checkpoints {stale} in "
                f"{self.directory}",
                stacklevel=2,
            )
            for s in stale:
                self._manager.delete(s)
        args = ocp.args.Composite(
            **{
                _STATE: ocp.args.StandardSave(state),
                _EXTRA: ocp.args.JsonSave(extra),
                _DIGEST: ocp.args.JsonSave(_digest(state, extra)),
            }
        )
        if not self._manager.save(step, args=args, metrics=metrics, force=True):
            raise RuntimeError(f"{name}: orbax declined to save step {step} in {self.directory}")
        self._manager.wait_until_finished()
        _fsync_tree(self.directory / str(step))
        self._sweep()

    def restore(self, step: int | None = None, *, target) -> tuple[Any, dict]:
        """Restore ``(state, extra)`` from checkpoint ``step`` (default: the latest complete one).

        Chapter 15: recovery after a failure. Every array is checked against the SHA-256 saved with
        it. With ``step=None`` a latest checkpoint that cannot be read (a truncated or missing
        file, a checksum mismatch) is skipped with a warning naming it and the reason, and the
        next older one is tried.

        Args:
          step: the step to restore, or ``None`` for the latest restorable checkpoint.
          target: a pytree with the saved structure whose leaves are arrays or
            ``jax.ShapeDtypeStruct`` s; the restored arrays take its shapes, dtypes and shardings.

        Returns:
          ``(state, extra)``: the state with the structure of ``target`` and the ``extra`` dict.

        Raises:
          FileNotFoundError: if the directory holds no checkpoint, or not ``step``.
          ValueError: if ``step`` (or, with ``step=None``, every checkpoint) cannot be restored;
            the message names the directory and each reason.
        """
        steps = self.steps()
        if not steps:
            raise FileNotFoundError(f"CheckpointManager.restore: no checkpoint in {self.directory}")
        if step is not None:
            if step not in steps:
                raise FileNotFoundError(
                    f"CheckpointManager.restore: expected a step in {steps}, got {step!r} "
                    f"(directory {self.directory})"
                )
            try:
                return self._restore_step(int(step), target)
            except Exception as err:  # noqa: BLE001 - any read failure means an unusable checkpoint
                raise ValueError(
                    f"CheckpointManager.restore: step {step} in {self.directory} cannot be "
                    f"restored: {_reason(err)}"
                ) from err
        failures = []
        for candidate in reversed(steps):
            try:
                return self._restore_step(candidate, target)
            except Exception as err:  # noqa: BLE001 - fall back to the previous checkpoint
                failures.append(f"step {candidate}: {_reason(err)}")
                warnings.warn(
                    f"CheckpointManager.restore: checkpoint step {candidate} in {self.directory} "
                    f"is incomplete or corrupt ({_reason(err)}); trying the previous one",
                    stacklevel=2,
                )
        raise ValueError(
            f"CheckpointManager.restore: no restorable checkpoint in {self.directory}: "
            + "; ".join(failures)
        )

    def close(self) -> None:
        """Wait for any pending work and release orbax's resources."""
        self._manager.close()

    def _restore_step(self, step: int, target) -> tuple[Any, dict]:
        step_dir = self.directory / str(step)
        has_digest = (step_dir / _DIGEST).exists()
        items = {_STATE: ocp.args.StandardRestore(target), _EXTRA: ocp.args.JsonRestore()}
        if has_digest:
            items[_DIGEST] = ocp.args.JsonRestore()
        restored = self._manager.restore(step, args=ocp.args.Composite(**items))
        state, extra = restored[_STATE], restored[_EXTRA]
        if has_digest:
            _verify(state, extra, restored[_DIGEST])
        return state, extra

    def _sweep(self) -> None:
        """Remove what a killed writer may have left: unfinished saves, half-deleted steps.

        Never follows a link: each entry is checked with ``lstat`` and must lie inside the
        checkpoint directory before it is removed.
        """
        root = self.directory
        if not os.path.lexists(root):
            return
        for entry in root.iterdir():
            if _TMP_MARK in entry.name:
                _remove_inside(root, entry)
        deleted = root / _DELETED
        if os.path.islink(deleted):
            _remove_inside(root, deleted)  # raises: a link is never followed
        if os.path.isdir(deleted):
            for entry in deleted.iterdir():
                _remove_inside(root, entry)


def _reason(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}"
