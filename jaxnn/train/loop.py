"""The end-to-end training loop — Chapters 13 and 15.

``fit`` reads top to bottom like the book's loop: for each epoch, shuffle (from seed and epoch), run
the jitted step over the batches with a progress bar, score the validation split, log train and
validation metrics, keep the best-validation parameters, checkpoint, and stop early when validation
stops improving. The test split is opened once, at the very end, and scored with the best-validation
parameters.

Exact resume: a checkpoint holds the whole train state (step, params, optimizer state, RNG), the
best-validation parameters, and the loop's own position (next epoch, early-stopping counters). The
data order is a function of (seed, epoch) and the step key of (seed, step), so a resumed run
performs bit-identical updates to an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from jaxnn import optim, parallel
from jaxnn.data import augment as augment_lib
from jaxnn.data import pipeline
from jaxnn.train.logger import MetricsLogger
from jaxnn.train.state import TrainState, create_train_state, params_sha256
from jaxnn.train.step import (
    jit,
    make_epoch_step,
    make_eval_step,
    make_indexed_step,
    make_train_step,
)

__all__ = ["FitConfig", "FitResult", "DivergenceError", "fit", "evaluate"]

_MONITORS = ("val_accuracy", "val_loss")


@dataclasses.dataclass(frozen=True)
class FitConfig:
    """How to train. Each field is also a train flag (``batch_size`` -> ``--batch-size``).

    Attributes:
      epochs: passes over the training split.
      batch_size: global examples per step (split over devices and processes).
      lr: peak learning rate.
      optimizer: sgd, momentum, nesterov, adam or adamw.
      schedule: constant, cosine or warmup_cosine.
      warmup_steps: linear warm-up steps for warmup_cosine.
      weight_decay: decoupled weight decay (Chapter 13).
      clip_norm: clip gradients to this global norm (Chapter 14); 0 disables.
      seed: seeds initialisation, data order, dropout and augmentation.
      patience: early stopping after this many epochs without improvement; 0 disables.
      min_delta: smallest change of the monitored metric that counts as improvement.
      monitor: val_accuracy (higher is better) or val_loss (lower is better).
      keep_last: checkpoints kept, newest first.
      keep_best: checkpoints kept by best validation metric.
      scan: run each epoch as one compiled ``lax.scan`` over the batches (data on device).
      device_data: keep the training split on the device(s) and gather each batch there from its
        indices (one process only); off streams batches from host memory.
      devices: shard each batch over this many devices; 0 means one device, no mesh.
      augment: training-time augmentation (none, shift, crop, noise).
      divergence_factor: stop when the loss exceeds this multiple of the first step's loss.
      eval_batch_size: batch size for validation and test scoring.
      progress: show a progress bar.
      checkpoint: write checkpoints when an output directory is given.
    """

    epochs: int = 20
    batch_size: int = 128
    lr: float = 1e-3
    optimizer: str = "adam"
    schedule: str = "constant"
    warmup_steps: int = 0
    weight_decay: float = 0.0
    clip_norm: float = 0.0
    seed: int = 0
    patience: int = 0
    min_delta: float = 0.0
    monitor: str = "val_accuracy"
    keep_last: int = 2
    keep_best: int = 1
    scan: bool = False
    device_data: bool = True
    devices: int = 0
    augment: str = "none"
    divergence_factor: float = 100.0
    eval_batch_size: int = 1000
    progress: bool = True
    checkpoint: bool = True

    def __post_init__(self):
        for name in ("epochs", "batch_size", "eval_batch_size", "keep_last"):
            if getattr(self, name) <= 0:
                raise ValueError(f"FitConfig: expected {name} > 0, got {getattr(self, name)}")
        for name in ("patience", "devices", "warmup_steps", "keep_best"):
            if getattr(self, name) < 0:
                raise ValueError(f"FitConfig: expected {name} >= 0, got {getattr(self, name)}")
        if not self.lr > 0:
            raise ValueError(f"FitConfig: expected lr > 0, got {self.lr}")
        if self.monitor not in _MONITORS:
            raise ValueError(f"FitConfig: expected monitor in {_MONITORS}, got {self.monitor!r}")


class FitResult(NamedTuple):
    """What ``fit`` returns: final state, best-validation params/model state, history, summary."""

    state: TrainState
    best_params: Any
    best_model_state: Any
    history: list
    summary: dict


class DivergenceError(RuntimeError):
    """Raised inside the loop when the divergence guard fires (caught by ``fit``).

    ``state`` holds the train state at the moment the guard fired (non-finite updates are never
    applied, so its parameters are finite).
    """

    state: TrainState | None = None


def evaluate(
    model, params, model_state, dataset, *, task="classification", batch_size=1000, mesh=None
) -> dict:
    """Score ``dataset`` without gradients or dropout: ``{"loss", "accuracy"}``.

    Chapter 13: validation and test scores come from data never used for updates. Every example is
    counted exactly once: the last batch is padded to a fixed shape with weight 0, so the eval step
    compiles once. Accuracy is NaN for regression.
    """
    return _score(
        jit(
            make_eval_step(model, task=task),
            cpu_library_fusion=getattr(model, "cpu_library_fusion", True),
        ),
        params,
        model_state,
        dataset,
        task=task,
        batch_size=batch_size,
        mesh=mesh,
    )


def _score(eval_step, params, model_state, dataset, *, task, batch_size, mesh):
    sums = {"loss": 0.0, "correct": 0.0, "count": 0.0}
    devices = mesh.size if mesh is not None else 1
    batch_size = min(_round_up(batch_size, devices), _round_up(len(dataset), devices))
    for x, y, w in pipeline.eval_batches(dataset, batch_size):
        batch = (x, y, w.astype(np.float32))
        if mesh is not None:
            rows = parallel.process_slice(len(x))
            batch = parallel.shard_batch(tuple(b[rows] for b in batch), mesh)
        out = eval_step(params, model_state, *batch)
        for k, v in parallel.to_host(out).items():
            sums[k] += float(v)
    count = max(sums["count"], 1.0)
    accuracy = sums["correct"] / count if task != "regression" else float("nan")
    return {"loss": sums["loss"] / count, "accuracy": accuracy}


def _round_up(n: int, k: int) -> int:
    return -(-n // k) * k


def _better(value, best, monitor, min_delta) -> bool:
    if best is None:
        return True
    if monitor == "val_loss":
        return value < best - min_delta
    return value > best + min_delta


class _Guard:
    """Divergence guard (Chapter 14): non-finite loss/gradient, or loss far above its start."""

    def __init__(self, factor, leaf_names, initial_loss=None):
        self.factor, self.leaf_names, self.initial_loss = factor, leaf_names, initial_loss

    def check(self, step: int, m: dict) -> None:
        loss = float(m["loss"])
        if not bool(m["finite"]):
            leaf = int(m["bad_leaf"])
            where = (
                f"; first non-finite parameter leaf: {self.leaf_names[leaf]}" if leaf >= 0 else ""
            )
            raise DivergenceError(
                f"training diverged at step {step}: non-finite loss or gradient "
                f"(loss={loss}){where}; the update was not applied"
            )
        if self.initial_loss is None:
            self.initial_loss = max(loss, 1e-3)
        elif loss > self.factor * self.initial_loss:
            raise DivergenceError(
                f"training diverged at step {step}: loss {loss:.4g} is more than "
                f"{self.factor:g}x the first step's loss {self.initial_loss:.4g}"
            )


def _leaf_names(params) -> list[str]:
    return [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_flatten_with_path(params)[0]]


def _mean_metrics(rows: list[dict]) -> dict:
    keys = ("loss", "accuracy", "grad_norm", "update_norm", "lr")
    return {k: float(np.mean([float(r[k]) for r in rows])) for k in keys}


class _Runner:
    """Runs training epochs: step by step from Python, or as one ``lax.scan`` per epoch.

    With ``device_data`` (and one process) the training split is placed on the device(s) once and
    each step gathers its batch there from B indices; otherwise host batches are streamed, each
    process feeding its own rows of every global batch.
    """

    def __init__(self, model, tx, schedule, splits, cfg, task, mesh, steps_per_epoch):
        self.cfg, self.mesh, self.splits, self.task = cfg, mesh, splits, task
        self.steps_per_epoch = steps_per_epoch
        augment = augment_lib.get(cfg.augment, splits.info)
        augment = None if cfg.augment == "none" else augment
        step_fn = make_train_step(
            model, tx, task=task, schedule=schedule, augment=augment, jitted=False
        )
        self.eval_step = jit(
            make_eval_step(model, task=task), cpu_library_fusion=model.cpu_library_fusion
        )
        self.on_device = cfg.scan or (cfg.device_data and jax.process_count() == 1)
        if cfg.scan and jax.process_count() > 1:
            raise ValueError("fit: scan=True runs on one process; got a multi-process run")
        if not self.on_device:
            self.train_step = jit(
                step_fn, donate_argnums=0, cpu_library_fusion=model.cpu_library_fusion
            )
            return
        sharding = None
        if mesh is not None:
            sharding = jax.sharding.NamedSharding(
                mesh, jax.sharding.PartitionSpec(parallel.DATA_AXIS)
            )
        make = make_epoch_step if cfg.scan else make_indexed_step
        self.train_step = jit(
            make(step_fn, batch_sharding=sharding),
            donate_argnums=0,
            cpu_library_fusion=model.cpu_library_fusion,
        )
        train = (splits.train.x, splits.train.y)
        self.data = jax.device_put(train) if mesh is None else parallel.replicate(train, mesh)

    def _batches(self, epoch):
        """This epoch's batches as device inputs: ``(x, y)`` or ``(x_all, y_all, idx)``."""
        if not self.on_device:
            for x, y in pipeline.batches(
                self.splits.train, self.cfg.batch_size, seed=self.cfg.seed, epoch=epoch
            ):
                if self.mesh is None:
                    yield x, y  # jit's dispatch moves NumPy inputs faster than device_put
                else:
                    rows = parallel.process_slice(len(x))
                    yield parallel.shard_batch((x[rows], y[rows]), self.mesh)
            return
        n, b = len(self.splits.train), self.cfg.batch_size
        perm = pipeline.epoch_permutation(n, seed=self.cfg.seed, epoch=epoch)
        idx = perm[: self.steps_per_epoch * b].reshape(self.steps_per_epoch, b)
        if self.cfg.scan:
            yield (*self.data, idx)
        else:
            for row in idx:  # B int32 per step: jit's dispatch moves them with the call
                yield (*self.data, row)

    def run_epoch(self, state, epoch, guard, bar):
        """Train one epoch; returns ``(state, per-step metrics)``."""
        if self.cfg.scan:
            return self._scan_epoch(state, epoch, guard, bar)
        rows = []
        try:
            state = self._loop_epoch(state, epoch, guard, bar, rows)
        except DivergenceError as err:
            err.state = self._last_state
            raise
        return state, rows

    def _loop_epoch(self, state, epoch, guard, bar, rows):
        pending = None
        for inputs in self._batches(epoch):
            step = int(state.step) if pending is None else pending[0] + 1
            state, metrics = self.train_step(state, *inputs)
            self._last_state = state
            if pending is not None:  # read the previous step's metrics while this one runs
                self._record(pending, rows, guard, bar)
            pending = (step, metrics)
        if pending is not None:
            self._record(pending, rows, guard, bar)
        return state

    def _record(self, pending, rows, guard, bar):
        step, metrics = pending
        m = parallel.to_host(metrics)
        guard.check(step, m)
        rows.append(m)
        bar.update(1)
        bar.set_postfix(loss=f"{float(m['loss']):.4f}", refresh=False)

    def _scan_epoch(self, state, epoch, guard, bar):
        first = int(state.step)
        (inputs,) = self._batches(epoch)
        state, stacked = self.train_step(state, *inputs)
        stacked = parallel.to_host(stacked)
        rows = [{k: v[i] for k, v in stacked.items()} for i in range(self.steps_per_epoch)]
        try:
            for i, m in enumerate(rows):
                guard.check(first + i, m)
        except DivergenceError as err:
            err.state = state
            raise
        bar.update(self.steps_per_epoch)
        return state, rows

    def evaluate(self, params, model_state, dataset):
        return _score(
            self.eval_step,
            params,
            model_state,
            dataset,
            task=self.task,
            batch_size=self.cfg.eval_batch_size,
            mesh=self.mesh,
        )


def _write_json(path: Path, obj) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2) + "\n")
    tmp.replace(path)


def fit(
    model,
    splits,
    cfg: FitConfig = FitConfig(),
    *,
    out_dir=None,
    resume=False,
    verbose=True,
    run_info=None,
) -> FitResult:
    """Train ``model`` on ``splits`` and score the test split once with the best-validation params.

    Chapter 15's loop: batches -> jitted step -> train/val logs -> checkpoints -> best-validation
    model; Chapter 13's early stopping on the validation metric; Chapter 14's divergence guard.

    Args:
      model: a :class:`jaxnn.models.Model` (``jaxnn.models.build(...)``).
      splits: :class:`jaxnn.data.Splits`, already normalized (``jaxnn.data.pipeline.standardize``).
      cfg: a :class:`FitConfig`.
      out_dir: run directory for ``metrics.jsonl``, ``summary.json``, ``tensorboard/`` and
        ``checkpoints/``; ``None`` keeps everything in memory.
      resume: continue from the latest complete checkpoint in ``out_dir`` (bit-exact on the same
        machine); with none there yet, start from step 0, so a preempted job can always pass it.
      verbose: print one line per epoch.
      run_info: extra JSON-able facts for ``OUT/config.json`` (how the data was loaded).

    Returns:
      A :class:`FitResult`; ``summary`` is also written to ``OUT/summary.json``.
    """
    task = splits.info.task
    if len(splits.train) < cfg.batch_size:
        raise ValueError(
            f"fit: expected batch_size <= {len(splits.train)} (the training examples), "
            f"got {cfg.batch_size}"
        )
    if resume and out_dir is None:
        raise ValueError("fit: resume=True needs out_dir, got None")
    if cfg.monitor == "val_accuracy" and task == "regression":
        cfg = dataclasses.replace(cfg, monitor="val_loss")
    main = jax.process_index() == 0
    out = Path(out_dir) if out_dir is not None else None
    mesh = (
        parallel.make_mesh(cfg.devices or None)
        if (cfg.devices or jax.process_count() > 1)
        else None
    )
    steps_per_epoch = pipeline.num_batches(len(splits.train), cfg.batch_size, drop_remainder=True)
    tx, schedule = optim.make_optimizer(
        cfg.optimizer,
        cfg.lr,
        schedule=cfg.schedule,
        total_steps=cfg.epochs * steps_per_epoch,
        warmup_steps=cfg.warmup_steps,
        weight_decay=cfg.weight_decay,
        clip_norm=cfg.clip_norm or None,
    )
    state = create_train_state(model, tx, cfg.seed)
    loop = {
        "epoch": 0,
        "best_value": None,
        "best_epoch": 0,
        "bad_epochs": 0,
        "initial_loss": None,
        "history": [],
    }
    best = jax.tree.map(jnp.copy, (state.params, state.model_state))  # state is donated
    ckpt = None
    if out is not None and cfg.checkpoint:
        from jaxnn.train.checkpoint import CheckpointManager

        ckpt = CheckpointManager(
            out / "checkpoints",
            keep_last=cfg.keep_last,
            keep_best=cfg.keep_best,
            best_metric=cfg.monitor,
            best_mode="min" if cfg.monitor == "val_loss" else "max",
        )
    if resume and ckpt is None:
        raise ValueError("fit: resume=True needs checkpoints, got cfg.checkpoint=False")
    if resume and ckpt.latest_step() is None:  # killed before its first checkpoint
        if verbose and main:
            print(f"no checkpoint in {out / 'checkpoints'} yet: starting from step 0", flush=True)
    elif resume:
        (state, best), loop = ckpt.restore(target=(state, best))
        if verbose and main:
            print(f"resumed from step {int(state.step)} (epoch {loop['epoch']})", flush=True)
    if mesh is not None:
        state, best = parallel.replicate((state, best), mesh)
    if out is not None and main:
        out.mkdir(parents=True, exist_ok=True)
        _write_json(
            out / "config.json",
            {
                "model": model.name,
                "model_config": dataclasses.asdict(model.cfg),
                "dataset": splits.info.name,
                "fit": dataclasses.asdict(cfg),
                **(run_info or {}),
            },
        )
    logger = MetricsLogger(
        out if main else None,
        epochs=cfg.epochs,
        keep_epochs=loop["epoch"],
        verbose=verbose and main,
    )
    runner = _Runner(model, tx, schedule, splits, cfg, task, mesh, steps_per_epoch)
    guard = _Guard(cfg.divergence_factor, _leaf_names(state.params), loop["initial_loss"])
    stopped_reason, message = "completed", ""
    try:
        for epoch in range(loop["epoch"], cfg.epochs):
            t0 = time.perf_counter()
            with tqdm(
                total=steps_per_epoch,
                desc=f"epoch {epoch + 1}/{cfg.epochs}",
                leave=False,
                disable=not (cfg.progress and main),
                dynamic_ncols=True,
            ) as bar:
                state, rows = runner.run_epoch(state, epoch, guard, bar)
            seconds = time.perf_counter() - t0
            train = _mean_metrics(rows)
            val = runner.evaluate(state.params, state.model_state, splits.val)
            record = {
                "epoch": epoch + 1,
                "step": int(state.step),
                "train_loss": train["loss"],
                "train_accuracy": train["accuracy"],
                "val_loss": val["loss"],
                "val_accuracy": val["accuracy"],
                "grad_norm": train["grad_norm"],
                "update_norm": train["update_norm"],
                "lr": train["lr"],
                "seconds": seconds,
            }
            logger.log_epoch(record)
            loop["history"].append(record)
            loop["epoch"], loop["initial_loss"] = epoch + 1, guard.initial_loss
            value = record[cfg.monitor]
            if _better(value, loop["best_value"], cfg.monitor, cfg.min_delta):
                loop.update(best_value=value, best_epoch=epoch + 1, bad_epochs=0)
                best = jax.tree.map(jnp.copy, (state.params, state.model_state))
            else:
                loop["bad_epochs"] += 1
            if ckpt is not None:
                ckpt.save(
                    int(state.step),
                    (state, best),
                    extra=loop,
                    metrics={"val_accuracy": val["accuracy"], "val_loss": val["loss"]},
                )
            if cfg.patience and loop["bad_epochs"] >= cfg.patience:
                stopped_reason = "early_stopping"
                message = (
                    f"early stopping: {cfg.monitor} did not improve for {cfg.patience} "
                    f"epochs; best epoch {loop['best_epoch']}"
                )
                break
    except DivergenceError as err:
        state, stopped_reason, message = err.state, "diverged", str(err)
    finally:
        logger.close()
        if ckpt is not None:
            ckpt.close()
    if message and verbose and main:
        print(message, flush=True)
    best_params, best_model_state = best
    summary = {
        "model": model.name,
        "dataset": splits.info.name,
        "best_epoch": loop["best_epoch"],
        f"best_{cfg.monitor}": loop["best_value"],
        "best_val_accuracy": _best_of(loop, "val_accuracy"),
        "best_val_loss": _best_of(loop, "val_loss"),
        "epochs_run": loop["epoch"],
        "steps": int(state.step),
        "stopped_reason": stopped_reason,
        "message": message,
        "params_sha256": params_sha256(state.params),
        "best_params_sha256": params_sha256(best_params),
        "test_accuracy": None,
        "test_loss": None,
    }
    if loop["best_epoch"] > 0:  # the test split is opened once, here, with the best params
        test = runner.evaluate(
            best_params,
            best_model_state,
            splits.test.unseal("fit: final score of the best-validation params"),
        )
        summary.update(test_accuracy=test["accuracy"], test_loss=test["loss"])
        if verbose and main:
            print(
                f"test (best epoch {loop['best_epoch']}): loss {test['loss']:.4f}  "
                f"accuracy {test['accuracy']:.4f}",
                flush=True,
            )
    summary = {
        k: (None if isinstance(v, float) and not math.isfinite(v) else v)
        for k, v in summary.items()
    }
    if out is not None and main:
        _write_json(out / "summary.json", summary)
    return FitResult(state, best_params, best_model_state, loop["history"], summary)


def _best_of(loop, key):
    for record in loop["history"]:
        if record["epoch"] == loop["best_epoch"]:
            return record[key]
    return None
