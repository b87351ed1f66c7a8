"""Checkpoints — Chapter 15: save the training state, keep the best, resume after a failure.

The book's two reasons for checkpoints are recovery from failures and selecting the
best-validation model. :class:`CheckpointManager` wraps ``orbax.checkpoint.CheckpointManager``
(public API only) for both:

- A save is atomic: orbax writes ``<step>.orbax-checkpoint-tmp*/`` and renames it to ``<step>/``
  once every file is written; a writer that opens the directory removes what a killed save left
  (orbax's ``cleanup_tmp_directories``). :meth:`CheckpointManager.save` then fsyncs the files, so
  a returned save is durable. A full disk or a read-only directory is a :class:`UserError`
  naming the directory and the intact previous step.
- Retention keeps the newest ``keep_last`` checkpoints and the best ``keep_best`` by a validation
  metric. orbax renames a retired step into ``_deleted/`` (atomic) before it is removed, so a kill
  never leaves a half-deleted ``<step>/`` behind.
- Every checkpoint carries a digest: the path, shape, dtype and SHA-256 of every array, the
  SHA-256 of ``extra`` and the run id. A sharded array is written shard by shard, each process
  its own (orbax), and hashed over its global value after a checked gather, one leaf at a time:
  the digest is the same whatever mesh saved it, and a checkpoint saved on one mesh restores
  onto another (the target's shardings) and is verified there.
  :meth:`CheckpointManager.restore` checks the target's structure against the digest
  (a different model is a mismatch naming the first differing leaf), then
  the bytes; a newest checkpoint that is truncated, corrupt or has no digest is skipped with a
  warning and the previous one is restored. A checkpoint without a digest is refused rather
  than verified another way: orbax stores no checksums of its own, and every checkpoint this
  module writes has one (written inside the same atomic save), so a missing digest means the
  directory was altered or written by something else.
- A checkpoint directory is untrusted input: no symbolic link or special file is followed,
  and nothing outside it is written or deleted.

On-disk layout, readable with plain orbax (``ocp.CheckpointManager(directory).restore(step,
args=ocp.args.Composite(state=ocp.args.StandardRestore(), extra=ocp.args.JsonRestore()))``)::

    <directory>/<step>/state/            the state pytree (orbax StandardSave, OCDBT)
    <directory>/<step>/extra/metadata    JSON: epoch, position in the epoch, best-so-far, config
    <directory>/<step>/metrics/metrics   JSON: the validation metrics (absent if saved without)
    <directory>/<step>/digest/metadata   JSON: {"format", "run_id", "extra", "arrays"}
    <directory>/_deleted/                retired steps on their way out

RNG keys must be stored as raw key data (``jax.random.key_data(key)``, ``uint32``), so the state is
plain arrays.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import hashlib
import json
import math
import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
from orbax.checkpoint import checkpoint_managers

from jaxnn._checks import check_positive_int
from jaxnn._contained import check_tree, remove_inside
from jaxnn.errors import UserError

__all__ = ["CheckpointManager", "NoCheckpointError", "load_best"]

_STATE, _EXTRA, _DIGEST, _METRICS = "state", "extra", "digest", "metrics"
_DELETED = "_deleted"  # orbax renames retired steps here; they are removed after each save
_FORMAT = 2  # digest format: leaves named by "/"-joined keys, with the run id
_BEST = "1"  # fit saves (train_state, (best_params, best_model_state)): the best pair is leaf 1
_MODES = ("max", "min")
_WRITE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM)


class NoCheckpointError(UserError, FileNotFoundError):
    """The directory holds no checkpoint (or not the requested step)."""


class _Refused(UserError):
    """A readable checkpoint that must not be used: another run, or another structure."""


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
        where = jax.tree_util.keystr(path)
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


def _leaf_name(path) -> str:
    """``0/params/dense/w``: a leaf's keys joined by "/", the same for a tuple or a list, a
    NamedTuple or a dict (orbax restores containers without a target as lists and dicts)."""
    parts = (getattr(k, "key", getattr(k, "idx", getattr(k, "name", k))) for k in path)
    return "/".join(str(p) for p in parts) or "<root>"


def _describe(tree, *, hashes: bool) -> dict:
    """``{leaf name: {"shape", "dtype"[, "sha256"]}}``, the hash over the leaf's global value.

    A sharded leaf is hashed after a checked gather, one leaf at a time: its shards are gathered
    (across processes too, a collective every process joins) and the SHA-256 is taken over the
    whole array's bytes, so the digest does not depend on the mesh it was saved from and a
    checkpoint restored onto another mesh is verified against the same digest. The files
    themselves are written shard by shard (orbax), never gathered.
    """
    out = {}
    for path, leaf in jax.tree_util.tree_leaves_with_path(tree):
        entry = {"shape": list(np.shape(leaf)), "dtype": str(np.dtype(leaf.dtype))}
        if hashes:
            host = np.ascontiguousarray(_global_value(leaf))
            entry["sha256"] = hashlib.sha256(host.tobytes()).hexdigest()
        out[_leaf_name(path)] = entry
    return out


def _global_value(leaf) -> np.ndarray:
    """The whole value of ``leaf`` on the host: a replicated copy, or the gathered shards."""
    if not isinstance(leaf, jax.Array) or leaf.is_fully_addressable:
        return np.asarray(jax.device_get(leaf))
    if leaf.is_fully_replicated:
        return np.asarray(leaf.addressable_data(0))
    from jax.experimental import multihost_utils

    value = np.asarray(multihost_utils.process_allgather(leaf, tiled=True))
    if value.shape != leaf.shape:
        raise ValueError(
            f"CheckpointManager: gathered {value.shape} for a leaf of shape {leaf.shape}"
        )
    return value


def _sha256_json(value) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()


def _first_difference(saved: dict, target, prefix: str) -> str | None:
    """The first leaf (in target order) whose presence, shape or dtype differs, or ``None``."""
    saved = {k[len(prefix) :]: v for k, v in saved.items() if k.startswith(prefix)}
    want = _describe(target, hashes=False)
    for name, spec in want.items():
        got = saved.get(name)
        if got is None:
            return f"leaf {prefix}{name} {tuple(spec['shape'])} {spec['dtype']} is not saved"
        if (got["shape"], got["dtype"]) != (spec["shape"], spec["dtype"]):
            return (
                f"leaf {prefix}{name} is saved as {tuple(got['shape'])} {got['dtype']}, the "
                f"target has {tuple(spec['shape'])} {spec['dtype']}"
            )
    extra = sorted(set(saved) - set(want))
    return f"leaf {prefix}{extra[0]} is saved but not in the target" if extra else None


def _verify(state, extra: dict, digest: dict) -> None:
    """Raise ``ValueError`` naming the first item whose bytes differ from the saved checksum."""
    if digest["extra"] != _sha256_json(extra):
        raise ValueError("extra does not match its saved SHA-256 checksum")
    current = _describe(state, hashes=True)
    for name, want in digest["arrays"].items():
        got = current.get(name, {}).get("sha256")
        if got is not None and "sha256" in want and got != want["sha256"]:
            raise ValueError(f"array {name} does not match its saved SHA-256 checksum")


def _fsync_tree(root: Path) -> None:
    """Flush every file and directory under ``root``, and ``root``'s parent, to stable storage."""
    paths = []
    for dirpath, _, filenames in os.walk(root):
        paths += [os.path.join(dirpath, name) for name in filenames] + [dirpath]
    for path in [*paths, str(root.parent)]:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _write_failure(err: BaseException | None) -> str | None:
    """The OS reason (full disk, read-only, no permission) behind a failed save, if any."""
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, OSError) and err.errno in _WRITE_ERRNOS:
            return os.strerror(err.errno)
        reasons = [os.strerror(code) for code in _WRITE_ERRNOS if os.strerror(code) in str(err)]
        if reasons:  # tensorstore reports the OS error in its message text
            return reasons[0]
        err = err.__cause__ or err.__context__
    return None


def _settle(manager) -> None:
    """Let the writer threads of a failed save end before the error is reported, so none is
    still writing (and printing) when the process exits."""
    import threading
    import time

    with contextlib.suppress(Exception):
        manager.wait_until_finished()
    deadline = time.monotonic() + 10.0
    for thread in threading.enumerate():
        if thread is not threading.current_thread() and type(thread).__name__ == "_SignalingThread":
            # orbax's thread re-raises its own failure from join: the failure being reported
            with contextlib.suppress(Exception):
                thread.join(max(0.0, deadline - time.monotonic()))


def _reason(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}"


def _check_ranking(keep_best, best_metric, best_mode, run_id) -> None:
    """Raise a ``ValueError`` naming the first of :class:`CheckpointManager`'s ranking and
    identity arguments that is invalid."""
    name = "CheckpointManager"
    if isinstance(keep_best, bool) or not isinstance(keep_best, int) or keep_best < 0:
        raise ValueError(f"{name}: expected keep_best to be a non-negative int, got {keep_best!r}")
    if not isinstance(best_metric, str) or not best_metric:
        raise ValueError(f"{name}: expected best_metric to be a metric name, got {best_metric!r}")
    if best_mode not in _MODES:
        raise ValueError(f"{name}: expected best_mode in {', '.join(_MODES)}, got {best_mode!r}")
    if run_id is not None and not isinstance(run_id, str):
        raise ValueError(f"{name}: expected run_id to be a string or None, got {run_id!r}")


@dataclasses.dataclass
class _Retention(checkpoint_managers.PreservationPolicy):
    """Keep the newest ``keep_last`` steps and the ``keep_best`` best by ``rank(step)``.

    ``rank`` returns ``None`` for a step without readable metrics: such a step is kept only while
    it is among the newest.
    """

    keep_last: int
    keep_best: int
    rank: Callable[[int], float | None]

    def _ranked(self, step: int) -> float:
        """The rank of a step known to have one."""
        value = self.rank(step)
        assert value is not None
        return value

    def should_preserve(self, checkpoints, *, context) -> list[bool]:
        steps = [info.step for info in checkpoints]
        ranked = sorted((s for s in steps if self.rank(s) is not None), key=self._ranked)
        keep = set(steps[-self.keep_last :]) | set(ranked[len(ranked) - self.keep_best :])
        return [s in keep for s in steps]


class CheckpointManager:
    """Save, keep and restore training checkpoints in one directory (Chapter 15).

    Keeps the newest ``keep_last`` checkpoints and the ``keep_best`` best by
    ``metrics[best_metric]`` (``best_mode="max"``: higher is better; ``"min"``: lower is better;
    NaN ranks worst). A checkpoint saved without metrics is kept only while it is among the
    newest. One process writes to a directory at a time; readers open it with ``read_only=True``
    (a writer removes unfinished saves when it opens the directory).

    Example::

        manager = CheckpointManager(run_dir / "checkpoints", keep_last=2, run_id=run_id)
        manager.save(step, state, extra={"epoch": epoch}, metrics={"val_accuracy": acc})
        state, extra = manager.restore(target=state, expected_run_id=run_id)

    Args:
      directory: where the checkpoints live (created if missing; never a symbolic link).
      keep_last: how many of the newest checkpoints to keep (positive int).
      keep_best: how many of the best checkpoints to keep (non-negative int).
      best_metric: the key of ``metrics`` that ranks checkpoints.
      best_mode: ``"max"`` or ``"min"``.
      run_id: a string saved with every checkpoint, checked by ``restore(expected_run_id=...)``.
      read_only: open for restoring only: nothing is created, cleaned or saved.

    Raises:
      ValueError: for a non-positive ``keep_last``, a negative ``keep_best``, an empty
        ``best_metric``, an unknown ``best_mode`` or a non-string ``run_id``.
      UserError: if the directory is a file, or it or anything in it is a symbolic link.
    """

    def __init__(
        self,
        directory,
        *,
        keep_last: int = 3,
        keep_best: int = 1,
        best_metric: str = "val_accuracy",
        best_mode: str = "max",
        run_id: str | None = None,
        read_only: bool = False,
    ):
        self.keep_last = check_positive_int("CheckpointManager", keep_last, "keep_last")
        _check_ranking(keep_best, best_metric, best_mode, run_id)
        self.keep_best, self.best_metric, self.best_mode = keep_best, best_metric, best_mode
        self.run_id, self.read_only = run_id, read_only
        self.directory = Path(directory).expanduser().absolute()
        check_tree("CheckpointManager", self.directory)
        options = ocp.CheckpointManagerOptions(
            best_fn=lambda metrics: 0.0,  # orbax writes metrics only with a best_fn; unused
            preservation_policy=_Retention(self.keep_last, keep_best, self._rank),
            todelete_subdir=None if read_only else _DELETED,
            cleanup_tmp_directories=not read_only,
            lightweight_initialize=True,  # metrics are read by _read_metrics, tolerantly
            enable_async_checkpointing=False,
            create=not read_only,
            read_only=read_only,
        )
        self._manager = ocp.CheckpointManager(self.directory, options=options)
        self._metrics = {step: self._read_metrics(step) for step in self.steps()}

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
        ranked = {s: r for s in self.steps() if (r := self._rank(s)) is not None}
        return max(ranked, key=ranked.__getitem__, default=None)

    def metrics(self, step: int) -> dict | None:
        """The metrics saved with ``step``, or ``None`` if it was saved without (or unreadable)."""
        return self._metrics.get(step)

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
          UserError: if the disk is full or the directory is not writable (the previous
            checkpoints stay intact), or a symbolic link appeared in the directory.
        """
        step, extra, metrics = self._check_save(step, state, extra, metrics)
        check_tree("CheckpointManager", self.directory)
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
                self._metrics.pop(s, None)
        digest = {
            "format": _FORMAT,
            "run_id": self.run_id,
            "extra": _sha256_json(extra),
            "arrays": _describe(state, hashes=True),
        }
        args = ocp.args.Composite(
            **{
                _STATE: ocp.args.StandardSave(state),
                _EXTRA: ocp.args.JsonSave(extra),
                _DIGEST: ocp.args.JsonSave(digest),
            }
        )
        previous, self._metrics[step] = self.latest_step(), metrics  # ranked during the save
        try:
            self._manager.save(step, args=args, metrics=metrics, force=True)
            self._manager.wait_until_finished()
            _fsync_tree(self.directory / str(step))
        except Exception as err:
            self._metrics.pop(step, None)
            _settle(self._manager)
            reason = _write_failure(err)
            if reason is None:
                raise
            intact = "no earlier checkpoint" if previous is None else f"checkpoint step {previous}"
            raise UserError(
                f"CheckpointManager.save: cannot write checkpoint step {step} in "
                f"{self.directory}: {reason}; {intact} there is intact; free space or make the "
                "directory writable, then resume from it"
            ) from err
        self._sweep()

    def restore(
        self, step: int | None = None, *, target, expected_run_id: str | None = None
    ) -> tuple[Any, dict]:
        """Restore ``(state, extra)`` from checkpoint ``step`` (default: the latest intact one).

        Chapter 15: recovery after a failure. The target's structure is checked against the
        saved digest first, then every array against its SHA-256. With ``step=None`` a newest
        checkpoint that is truncated, corrupt or has no digest is skipped with a warning naming
        it and the reason, and the next older one is tried.

        Args:
          step: the step to restore, or ``None`` for the latest restorable checkpoint.
          target: a pytree with the saved structure whose leaves are arrays or
            ``jax.ShapeDtypeStruct`` s; the restored arrays take its shapes, dtypes and shardings.
          expected_run_id: if given, a checkpoint saved with another run id is refused.

        Returns:
          ``(state, extra)``: the state with the structure of ``target`` and the ``extra`` dict.

        Raises:
          NoCheckpointError: (a ``UserError`` and ``FileNotFoundError``) if the directory holds
            no checkpoint, or not ``step``.
          UserError: if a checkpoint belongs to another run or has another structure (no
            fallback: older checkpoints of the same directory would too), or if ``step`` (or,
            with ``step=None``, every checkpoint) cannot be restored; the message names the
            directory and each reason.
        """
        return self._restore(step, target, expected_run_id, prefix="")

    def close(self) -> None:
        """Wait for any pending work and release orbax's resources."""
        self._manager.close()

    def _sweep(self) -> None:
        """Remove the retired steps orbax renamed into ``_deleted/`` (never following a link).

        Only process 0 deletes, as orbax does: processes sharing the directory do not race.
        """
        deleted = self.directory / _DELETED
        if jax.process_index() == 0 and os.path.lexists(deleted):
            for entry in [deleted] if os.path.islink(deleted) else list(deleted.iterdir()):
                remove_inside("CheckpointManager", self.directory, entry)  # raises for a link

    def _check_save(self, step, state, extra, metrics):
        name = "CheckpointManager.save"
        if self.read_only:
            raise ValueError(f"{name}: {self.directory} was opened with read_only=True")
        if isinstance(step, bool) or not isinstance(step, (int, np.integer)) or step < 0:
            raise ValueError(f"{name}: expected step to be a non-negative int, got {step!r}")
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
        return int(step), extra, metrics

    def _rank(self, step: int) -> float | None:
        """The value that ranks ``step`` (higher is better); NaN ranks worst, no metrics: None."""
        metrics = self._metrics.get(step)
        value = metrics.get(self.best_metric) if isinstance(metrics, dict) else None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return None
        value = float(value)
        return -math.inf if math.isnan(value) else value if self.best_mode == "max" else -value

    def _read_metrics(self, step: int) -> dict | None:
        path = self.directory / str(step) / _METRICS / _METRICS
        try:
            return json.loads(path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as err:
            warnings.warn(
                f"CheckpointManager: the metrics of step {step} in {path} are unreadable "
                f"({_reason(err)}); the step is not ranked as a best checkpoint",
                stacklevel=3,
            )
            return None

    def _restore(self, step, target, expected_run_id, prefix) -> tuple[Any, dict]:
        steps = self._check_restorable(step)
        failures = []
        for candidate in [int(step)] if step is not None else reversed(steps):
            try:
                return self._restore_step(candidate, target, expected_run_id, prefix)
            except _Refused:
                raise
            except Exception as err:  # noqa: BLE001 - any read failure means an unusable checkpoint
                failures.append(f"step {candidate}: {_reason(err)}")
                if step is None:
                    warnings.warn(
                        f"CheckpointManager.restore: checkpoint step {candidate} in "
                        f"{self.directory} is incomplete or corrupt ({_reason(err)}); trying the "
                        "previous one",
                        stacklevel=3,
                    )
        if step is not None:
            raise UserError(
                f"CheckpointManager.restore: step {step} in {self.directory} cannot be restored: "
                f"{failures[0]}; restore without a step to use the newest intact checkpoint"
            )
        raise UserError(
            f"CheckpointManager.restore: no restorable checkpoint in {self.directory}: "
            f"{'; '.join(failures)}; start a new run in another directory"
        )

    def _check_restorable(self, step) -> list[int]:
        """The directory's steps; raise :class:`NoCheckpointError` if ``step`` is not among them
        (``None``: if there is none)."""
        steps = self.steps()
        if steps and (step is None or step in steps):
            return steps
        raise NoCheckpointError(
            f"CheckpointManager.restore: expected a step in {steps}, got {step!r} in "
            f"{self.directory}; pick one of those"
            if steps
            else f"CheckpointManager.restore: no checkpoint in {self.directory} (checkpoints "
            "were off, or the run stopped before its first epoch ended); train the run "
            "with checkpoints to create one"
        )

    def _read_digest(self, step: int) -> dict:
        if not os.path.isdir(self.directory / str(step) / _DIGEST):
            raise ValueError(
                f"it has no {_DIGEST}/ with the checksums of its arrays, so its bytes cannot be "
                "verified (unverified checkpoints are refused)"
            )
        items = ocp.args.Composite(**{_DIGEST: ocp.args.JsonRestore()})
        digest = self._manager.restore(step, args=items)[_DIGEST]
        if not isinstance(digest, dict) or digest.get("format") != _FORMAT:
            raise ValueError(f"its {_DIGEST}/ is not a format-{_FORMAT} digest")
        return digest

    def _restore_step(self, step: int, target, expected_run_id, prefix) -> tuple[Any, dict]:
        digest = self._read_digest(step)
        where = f"checkpoint step {step} in {self.directory}"
        if expected_run_id is not None and digest["run_id"] != expected_run_id:
            raise _Refused(
                f"CheckpointManager.restore: {where} belongs to run {digest['run_id']!r}, "
                f"expected run {expected_run_id!r}; resume that run's own directory, or start a "
                "new run in another directory"
            )
        difference = _first_difference(digest["arrays"], target, prefix)
        if difference is not None:
            raise _Refused(
                f"CheckpointManager.restore: {where} does not match the target structure: "
                f"{difference}; restore with the model and optimizer settings the run was saved "
                "with (its config.json), or start a new run in another directory"
            )
        abstract = target
        if prefix:  # only a subtree is known: the whole tree's shapes come from orbax metadata
            state_dir = self.directory / str(step) / _STATE
            saved = ocp.StandardCheckpointHandler().metadata(state_dir)
            abstract = jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype), saved)
        items = {_STATE: ocp.args.StandardRestore(abstract), _EXTRA: ocp.args.JsonRestore()}
        restored = self._manager.restore(step, args=ocp.args.Composite(**items))
        state, extra = restored[_STATE], restored[_EXTRA]
        _verify(state, extra, digest)
        return state, extra


def load_best(directory, target, *, expected_run_id: str | None = None) -> Any:
    """The best-validation ``(params, model_state)`` of a run, for ``eval`` and ``predict``.

    Chapter 15: the model to score is the one with the best validation metric. Every checkpoint
    :func:`jaxnn.train.fit` writes holds ``(train_state, (best_params, best_model_state))``; this
    reads the latest intact checkpoint of ``directory`` (read-only, so it is safe while a writer
    is saving) and returns its second element, checked against its digest. No optimizer is needed:
    the rest of the saved tree takes its shapes from orbax's metadata.

    Args:
      directory: a run's ``checkpoints/`` directory.
      target: ``(params, model_state)`` of the run's model (arrays or ``jax.ShapeDtypeStruct`` s),
        for example ``model.init(key)``; only its structure, shapes and dtypes are used.
      expected_run_id: if given, a checkpoint saved with another run id is refused.

    Returns:
      The best pair, with the structure of ``target`` and ``jax.Array`` leaves.

    Raises:
      NoCheckpointError: if ``directory`` holds no checkpoint.
      UserError: as :meth:`CheckpointManager.restore`.
    """
    with CheckpointManager(directory, read_only=True) as manager:
        state, _ = manager._restore(None, target, expected_run_id, prefix=_BEST + "/")
    by_name = {_leaf_name(path): leaf for path, leaf in jax.tree_util.tree_leaves_with_path(state)}
    paths, treedef = jax.tree_util.tree_flatten_with_path(target)
    leaves = [jnp.asarray(by_name[f"{_BEST}/{_leaf_name(path)}"]) for path, _ in paths]
    return jax.tree.unflatten(treedef, leaves)
