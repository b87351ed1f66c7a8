"""The end-to-end training loop — Chapters 13 and 15.

``fit`` reads top to bottom like the book's loop: for each epoch, shuffle (from seed and epoch), run
the jitted step over the batches with a progress bar, score the validation split, log train and
validation metrics, keep the best-validation parameters, checkpoint, and stop early when validation
stops improving. The test split is opened once, at the very end, and scored with the best-validation
parameters.

Exact resume: a checkpoint holds the whole train state (step, params, optimizer state, RNG), the
best-validation parameters, and the loop's own position (:class:`LoopState`). The data order is a
function of (seed, epoch) and the step key of (seed, step), so a resumed run performs bit-identical
updates to an uninterrupted one.

Divergence (Chapter 14): the step never applies a non-finite update. The per-step metrics of an
epoch come back to the host once, at its end (no step waits for the host), and the guard then names
the first step whose loss or gradient was non-finite, or whose loss exceeded
``divergence_factor`` times the first step's.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import time
import typing
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from jaxnn import _xla, optim, parallel
from jaxnn.data import augment as augment_lib
from jaxnn.data import pipeline
from jaxnn.errors import UserError
from jaxnn.train import interrupts
from jaxnn.train import run as run_lib
from jaxnn.train.logger import MetricsLogger, json_safe
from jaxnn.train.state import TrainState, create_train_state, params_sha256
from jaxnn.train.step import (
    make_epoch_step,
    make_eval_step,
    make_indexed_step,
    make_train_step,
)

__all__ = ["FitConfig", "FitResult", "LoopState", "fit", "evaluate", "train_epoch"]

MONITORS = ("val_accuracy", "val_loss")
_MAX_SEED = 2**32 - 1


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
      weight_decay: decoupled weight decay (Chapter 13); needs adamw, sgd, momentum or nesterov.
      clip_norm: clip gradients to this global norm (Chapter 14); 0 disables.
      seed: seeds initialisation, data order, dropout and augmentation (0 to 2**32 - 1).
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
      dtype: compute dtype of the forward and backward pass; bfloat16 keeps float32 master
        params and optimizer state (mixed precision).
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
    dtype: str = "float32"
    eval_batch_size: int = 1000
    progress: bool = True
    checkpoint: bool = True

    #: The enumerated fields and their values: checked here, listed by the CLI's help.
    CHOICES: typing.ClassVar[dict] = {
        "optimizer": optim.OPTIMIZERS,
        "schedule": optim.SCHEDULES,
        "monitor": MONITORS,
        "dtype": ("float32", "bfloat16"),
    }

    def __post_init__(self):
        check_field_types(self)
        _check_field_ranges(self)
        if self.optimizer == "adam" and self.weight_decay > 0:
            raise UserError(
                f"FitConfig: 'adam' takes no weight decay, got weight_decay={self.weight_decay}; "
                "use 'adamw' for Adam with decoupled weight decay"
            )
        for name, choices in self.CHOICES.items():
            if getattr(self, name) not in choices:
                got = getattr(self, name)
                raise UserError(f"FitConfig: expected {name} in {', '.join(choices)}, got {got!r}")


def _check_field_ranges(cfg: FitConfig) -> None:
    """Raise a :class:`UserError` naming the first field out of its range."""
    checks = [(n, "> 0", lambda v: v > 0) for n in ("epochs", "batch_size", "eval_batch_size")]
    checks += [("keep_last", "> 0", lambda v: v > 0)]
    checks += [
        (n, ">= 0", lambda v: v >= 0)
        for n in ("patience", "devices", "warmup_steps", "keep_best", "weight_decay")
    ]
    checks += [
        (n, "> 0", lambda v: math.isfinite(v) and v > 0) for n in ("lr", "divergence_factor")
    ]
    checks += [("seed", "in [0, 2**32 - 1]", lambda v: 0 <= v <= _MAX_SEED)]
    for name, want, ok in checks:
        if not ok(getattr(cfg, name)):
            raise UserError(f"FitConfig: expected {name} {want}, got {getattr(cfg, name)}")


def check_field_types(cfg) -> None:
    """Raise a :class:`UserError` naming the first field whose value has the wrong type."""
    for field in dataclasses.fields(cfg):
        field, kind = field.name, typing.get_type_hints(type(cfg))[field.name]
        kind = typing.get_origin(kind) or kind  # tuple[str, ...] -> tuple
        value = getattr(cfg, field)
        ok = isinstance(value, kind) and (kind is bool or not isinstance(value, bool))
        if kind is float:
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            ok = ok and math.isfinite(value) if field != "clip_norm" else ok
        if not ok:
            raise UserError(
                f"{type(cfg).__name__}: expected {field} to be {kind.__name__}, got {value!r}"
            )


@dataclasses.dataclass
class LoopState:
    """Where the loop stands; its ``asdict`` is saved with every checkpoint and restored on resume.

    Attributes:
      epoch: epochs completed.
      best_value: best value of the monitored metric so far (None before the first epoch).
      best_epoch: the epoch (1-based) that reached it.
      bad_epochs: epochs since the last improvement (early stopping counts these).
      initial_loss: the first step's loss, the divergence guard's reference.
      history: one record per completed epoch.
    """

    epoch: int = 0
    best_value: float | None = None
    best_epoch: int = 0
    bad_epochs: int = 0
    initial_loss: float | None = None
    history: list = dataclasses.field(default_factory=list)

    def add(self, record: dict, cfg: FitConfig) -> bool:
        """Append epoch ``record`` and count it for early stopping; True when it is the new best."""
        self.epoch = record["epoch"]
        self.history.append(record)
        value = record[cfg.monitor]
        sign = -1.0 if cfg.monitor == "val_loss" else 1.0
        better = self.best_value is None or sign * (value - self.best_value) > cfg.min_delta
        if better:
            self.best_value, self.best_epoch, self.bad_epochs = value, record["epoch"], 0
        else:
            self.bad_epochs += 1
        return better

    def early_stop_message(self, cfg: FitConfig) -> str:
        """Why to stop early (Chapter 13), or ``""`` to go on."""
        if not cfg.patience or self.bad_epochs < cfg.patience:
            return ""
        return (
            f"early stopping: {cfg.monitor} did not improve for {cfg.patience} epochs; "
            f"best epoch {self.best_epoch}"
        )

    def best_record(self) -> dict:
        """The history record of the best epoch (empty before the first epoch)."""
        return next((r for r in self.history if r["epoch"] == self.best_epoch), {})


class FitResult(NamedTuple):
    """What ``fit`` returns: final state, best-validation params/model state, history, summary."""

    state: TrainState
    best_params: Any
    best_model_state: Any
    history: list
    summary: dict


# ---------------------------------------------------------------------------------------------
# Plain functions: one epoch of training, scoring a split, the divergence guard.


def train_epoch(step_fn, state: TrainState, inputs, *, scan: bool, bar=None, check=None):
    """Run one epoch: ``step_fn(state, *batch)`` for each batch of ``inputs``.

    With ``scan`` the epoch is one call of a scanned step (``inputs`` yields one item) whose
    metrics come back stacked. The metrics stay on the device until the epoch ends, then come to
    the host in one transfer. ``check()``, if given, runs after each step is dispatched (``fit``
    passes :meth:`jaxnn.train.interrupts.Deferred.check`, which raises on Ctrl-C or SIGTERM).

    Returns:
      ``(state, rows)``: the new state and one host dict of metrics per step.
    """
    rows = []
    for batch in inputs:
        state, metrics = step_fn(state, *batch)
        rows.append(metrics)
        if bar is not None and not scan:
            bar.update(1)
        if check is not None:
            check()
    rows = parallel.to_host(rows)
    if scan:
        (stacked,) = rows
        rows = [{k: v[i] for k, v in stacked.items()} for i in range(len(stacked["loss"]))]
        if bar is not None:
            bar.update(len(rows))
    return state, rows


@functools.lru_cache(maxsize=16)
def _eval_step(model, task: str, options: tuple | None):
    chosen = None if options is None else dict(options)
    step = make_eval_step(model, task=task)
    return _xla.jit(step, workload=getattr(model, "name", None), compiler_options=chosen)


def evaluate(
    model,
    params,
    model_state,
    dataset,
    *,
    task="classification",
    batch_size=1000,
    mesh=None,
    compiler_options=None,
) -> dict:
    """Score ``dataset`` without gradients or dropout: ``{"loss", "accuracy"}``.

    Chapter 13: validation and test scores come from data never used for updates. Every example is
    counted exactly once: the last batch is padded to a fixed shape with weight 0, so the eval step
    compiles once. Accuracy is NaN for regression.
    """
    options = None if compiler_options is None else tuple(sorted(compiler_options.items()))
    eval_step = _eval_step(model, task, options)
    sums = {"loss": 0.0, "correct": 0.0, "count": 0.0}
    devices = mesh.size if mesh is not None else 1
    batch_size = min(_round_up(batch_size, devices), _round_up(len(dataset), devices))
    for x, y, w in pipeline.eval_batches(dataset, batch_size):
        batch = (x, y, w.astype(np.float32))
        if mesh is not None:
            rows = parallel.process_slice(len(x))
            batch = parallel.shard_batch(tuple(b[rows] for b in batch), mesh)
        for k, v in parallel.to_host(eval_step(params, model_state, *batch)).items():
            sums[k] += float(v)
    count = max(sums["count"], 1.0)
    accuracy = sums["correct"] / count if task != "regression" else float("nan")
    return {"loss": sums["loss"] / count, "accuracy": accuracy}


def _round_up(n: int, k: int) -> int:
    return -(-n // k) * k


def check_divergence(rows, first_step: int, loop: LoopState, cfg: FitConfig, params) -> str:
    """The divergence guard (Chapter 14) over one epoch's step metrics: ``""`` or the reason.

    Sets ``loop.initial_loss`` from the run's first step; ``params`` names the leaves.
    """
    for i, m in enumerate(rows):
        loss, step = float(m["loss"]), first_step + i
        if not bool(m["finite"]):
            leaf = int(m["bad_leaf"])
            names = [
                jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_leaves_with_path(params)
            ]
            where = f"; first non-finite parameter leaf: {names[leaf]}" if leaf >= 0 else ""
            return (
                f"training diverged at step {step}: non-finite loss or gradient "
                f"(loss={loss}){where}; the update was not applied"
            )
        if loop.initial_loss is None:
            loop.initial_loss = max(loss, 1e-3)
        elif loss > cfg.divergence_factor * loop.initial_loss:
            return (
                f"training diverged at step {step}: loss {loss:.4g} is more than "
                f"{cfg.divergence_factor:g}x the first step's loss {loop.initial_loss:.4g}"
            )
    return ""


# ---------------------------------------------------------------------------------------------
# Setting up: checks, the compiled step and its inputs, checkpoints.


def _check_fit_args(model, splits, cfg: FitConfig, out_dir, resume) -> FitConfig:
    if len(splits.train) < cfg.batch_size:
        raise UserError(
            f"fit: expected batch_size <= {len(splits.train)} (the training examples), "
            f"got {cfg.batch_size}"
        )
    if resume and (out_dir is None or not cfg.checkpoint):
        raise UserError("fit: resume=True needs out_dir and checkpoints (checkpoint=True)")
    _check_model_fits_data(model, splits)
    if cfg.monitor == "val_accuracy" and splits.info.task == "regression":
        cfg = dataclasses.replace(cfg, monitor="val_loss")
    return cfg


def _check_model_fits_data(model, splits) -> None:
    """The model's output width must equal the classes (or vocabulary) of the data."""
    info = splits.info
    params, state = jax.eval_shape(model.init, jax.random.key(0))
    x = jax.ShapeDtypeStruct((1, *info.input_shape), splits.train.x.dtype)
    out, _ = jax.eval_shape(lambda p, s, x: model.apply(p, x, state=s), params, state, x)
    if info.task != "regression" and out.shape[-1] != info.num_classes:
        raise UserError(
            f"fit: expected a model with {info.num_classes} outputs for {info.name} "
            f"({info.num_classes} classes), got {out.shape[-1]}; set num_classes="
            f"{info.num_classes} in the model config"
        )


def _sharded(cfg: FitConfig) -> bool:
    return bool(cfg.devices) or jax.process_count() > 1


def _compile_step(model, tx, schedule, splits, cfg: FitConfig, mesh, compiler_options):
    """The jitted step ``fit`` runs, and the training split on the device (None: host batches)."""
    augment = None if cfg.augment == "none" else augment_lib.get(cfg.augment, splits.info)
    compute_dtype = None if cfg.dtype == "float32" else cfg.dtype
    step = make_train_step(
        model, tx, task=splits.info.task, schedule=schedule, augment=augment, jitted=False,
        compute_dtype=compute_dtype,
    )  # fmt: skip
    on_device = cfg.scan or (cfg.device_data and jax.process_count() == 1)
    if cfg.scan and jax.process_count() > 1:
        raise UserError("fit: scan=True runs on one process; got a multi-process run")
    data = None
    if on_device:
        sharding = None if mesh is None else parallel.batch_sharding(mesh)
        step = (make_epoch_step if cfg.scan else make_indexed_step)(step, batch_sharding=sharding)
        train = (splits.train.x, splits.train.y)
        data = jax.device_put(train) if mesh is None else parallel.replicate(train, mesh)
    workload = getattr(model, "name", None)
    jitted = _xla.jit(step, workload=workload, compiler_options=compiler_options, donate_argnums=0)
    return jitted, data


def _epoch_inputs(splits, cfg: FitConfig, epoch: int, mesh, data, steps: int):
    """This epoch's step inputs: ``(x, y)`` host batches, or ``(x_all, y_all, idx)`` on device."""
    if data is None:
        for x, y in pipeline.batches(splits.train, cfg.batch_size, seed=cfg.seed, epoch=epoch):
            if mesh is None:
                yield x, y  # jit's dispatch moves NumPy inputs faster than device_put
            else:
                rows = parallel.process_slice(len(x))
                yield parallel.shard_batch((x[rows], y[rows]), mesh)
        return
    perm = pipeline.epoch_permutation(len(splits.train), seed=cfg.seed, epoch=epoch)
    idx = perm[: steps * cfg.batch_size].reshape(steps, cfg.batch_size)
    if cfg.scan:
        yield (*data, idx)
    else:
        yield from ((*data, row) for row in idx)  # B int32 per step, moved with the call


def make_optimizer(cfg: FitConfig, *, total_steps: int):
    """The optimizer and schedule that a :class:`FitConfig` asks for."""
    return optim.make_optimizer(
        cfg.optimizer,
        cfg.lr,
        schedule=cfg.schedule,
        total_steps=total_steps,
        warmup_steps=cfg.warmup_steps,
        weight_decay=cfg.weight_decay,
        clip_norm=cfg.clip_norm or None,
    )


def _progress(steps: int, epoch: int, cfg: FitConfig, main: bool):
    """The epoch's progress bar, shown on a terminal only (a log file gets the epoch lines)."""
    import sys

    show = cfg.progress and main and sys.stderr.isatty()
    return tqdm(
        total=steps,
        desc=f"epoch {epoch + 1}/{cfg.epochs}",
        leave=False,
        disable=not show,
        dynamic_ncols=True,
    )


def _run_id(out: Path | None, resume: bool) -> str:
    """The run's id: a resumed run keeps the one in its ``config.json``."""
    if resume and out is not None and (out / run_lib.CONFIG).exists():
        saved = run_lib.read_config(out).get("run_id")
        if isinstance(saved, str) and saved:
            return saved
    return run_lib.new_run_id()


def _checkpoints(out: Path | None, cfg: FitConfig, run_id: str):
    if out is None or not cfg.checkpoint:
        return None
    from jaxnn.train.checkpoint import CheckpointManager

    mode = "min" if cfg.monitor == "val_loss" else "max"
    return CheckpointManager(
        out / "checkpoints",
        keep_last=cfg.keep_last,
        keep_best=cfg.keep_best,
        best_metric=cfg.monitor,
        best_mode=mode,
        run_id=run_id,
    )


def _resume(ckpt, state, best, say, run_id):
    if ckpt.latest_step() is None:  # killed before its first checkpoint
        say(f"no checkpoint in {ckpt.directory} yet: starting from step 0")
        return state, best, LoopState()
    (state, best), extra = ckpt.restore(target=(state, best), expected_run_id=run_id)
    loop = LoopState(**extra)
    say(f"resumed from step {int(state.step)} (epoch {loop.epoch})")
    return state, best, loop


def _write_json(out: Path | None, name: str, obj, main: bool) -> None:
    """Write ``out/name`` atomically, as strict JSON (no NaN or Infinity); process 0 only."""
    if out is None or not main:
        return
    out.mkdir(parents=True, exist_ok=True)
    path = out / name
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, allow_nan=False) + "\n")
    tmp.replace(path)


def _epoch_record(epoch, state, rows, val, seconds) -> dict:
    mean = {k: float(np.mean([float(r[k]) for r in rows])) for k in rows[0] if k != "bad_leaf"}
    return {
        "epoch": epoch + 1,
        "step": int(state.step),
        "train_loss": mean["loss"],
        "train_accuracy": mean["accuracy"],
        "val_loss": val["loss"],
        "val_accuracy": val["accuracy"],
        "grad_norm": mean["grad_norm"],
        "update_norm": mean["update_norm"],
        "lr": mean["lr"],
        "seconds": seconds,
    }


def _copy(tree):
    return jax.tree.map(jnp.copy, tree)  # the train state is donated to the step


# ---------------------------------------------------------------------------------------------
# The loop.


def fit(
    model,
    splits,
    cfg: FitConfig = FitConfig(),
    *,
    out_dir=None,
    resume=False,
    verbose=True,
    run_info=None,
    compiler_options=None,
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
      compiler_options: XLA options for the train and eval steps; ``None`` takes jaxnn's choice
        for the model from :mod:`jaxnn._xla` (CPU only), ``{}`` none at all.

    Returns:
      A :class:`FitResult`; ``summary`` is also written to ``OUT/summary.json``.

    Raises:
      jaxnn.train.interrupts.Interrupted: on Ctrl-C or SIGTERM during the epochs, raised after
        the step, evaluation or save in progress (a ``KeyboardInterrupt``; the last checkpoint
        is complete and ``resume=True`` continues from it).
    """
    cfg = _check_fit_args(model, splits, cfg, out_dir, resume)
    main = jax.process_index() == 0
    say = (lambda msg: print(msg, flush=True)) if verbose and main else (lambda msg: None)
    out = Path(out_dir) if out_dir is not None else None
    mesh = parallel.make_mesh(cfg.devices or None) if _sharded(cfg) else None
    steps = pipeline.num_batches(len(splits.train), cfg.batch_size, drop_remainder=True)
    tx, schedule = make_optimizer(cfg, total_steps=cfg.epochs * steps)
    state = create_train_state(model, tx, cfg.seed)
    run_id = _run_id(out, resume)
    best, loop = _copy((state.params, state.model_state)), LoopState()
    ckpt = _checkpoints(out, cfg, run_id)
    if resume:
        state, best, loop = _resume(ckpt, state, best, say, run_id)
    if mesh is not None:
        state, best = parallel.replicate((state, best), mesh)
    _write_json(out, run_lib.CONFIG, _config_record(model, splits, cfg, run_id, run_info), main)
    _write_json(out, run_lib.DATA_INFO, run_lib.info_to_json(splits.info), main)
    logger = MetricsLogger(
        out if main else None, epochs=cfg.epochs, keep_epochs=loop.epoch, verbose=verbose and main
    )
    step_fn, data = _compile_step(model, tx, schedule, splits, cfg, mesh, compiler_options)
    score = functools.partial(
        evaluate, model, task=splits.info.task, batch_size=cfg.eval_batch_size, mesh=mesh,
        compiler_options=compiler_options,
    )  # fmt: skip
    stopped, message = "completed", ""
    with interrupts.deferred() as flags:  # Ctrl-C and SIGTERM act at the checks below
        try:
            for epoch in range(loop.epoch, cfg.epochs):
                t0, first_step = time.perf_counter(), int(state.step)
                inputs = _epoch_inputs(splits, cfg, epoch, mesh, data, steps)
                with _progress(steps, epoch, cfg, main) as bar:
                    state, rows = train_epoch(
                        step_fn, state, inputs, scan=cfg.scan, bar=bar, check=flags.check
                    )
                message = check_divergence(rows, first_step, loop, cfg, best[0])
                if message:
                    stopped = "diverged"
                    break
                val = score(state.params, state.model_state, splits.val)
                flags.check()
                record = _epoch_record(epoch, state, rows, val, time.perf_counter() - t0)
                if loop.add(record, cfg):
                    best = _copy((state.params, state.model_state))
                logger.log_epoch(record, best_epoch=loop.best_epoch)
                if ckpt is not None:
                    metrics = {"val_accuracy": val["accuracy"], "val_loss": val["loss"]}
                    ckpt.save(int(state.step), (state, best), extra=dataclasses.asdict(loop),
                              metrics=metrics)  # fmt: skip
                flags.check()  # after the save: it completes before a signal acts
                message = loop.early_stop_message(cfg)
                if message:
                    stopped = "early_stopping"
                    break
        finally:
            logger.close()
            if ckpt is not None:
                ckpt.close()
    if message:
        say(message)
    summary = _summary(model, splits, cfg, loop, state, best, stopped, message, score, say)
    _write_json(out, "summary.json", summary, main)
    logger.draw(best_epoch=loop.best_epoch, test=summary)
    return FitResult(state, best[0], best[1], loop.history, summary)


def _config_record(model, splits, cfg: FitConfig, run_id: str, run_info) -> dict:
    return {
        "run_id": run_id,
        "model": model.name,
        "model_config": dataclasses.asdict(model.cfg),
        "dataset": splits.info.name,
        "fit": dataclasses.asdict(cfg),
        **(run_info or {}),
    }


def _summary(model, splits, cfg, loop: LoopState, state, best, stopped, message, score, say):
    """The run's summary; the test split is opened here, once, with the best-validation params."""
    summary = {
        "model": model.name,
        "dataset": splits.info.name,
        "best_epoch": loop.best_epoch,
        f"best_{cfg.monitor}": loop.best_value,
        "best_val_accuracy": loop.best_record().get("val_accuracy"),
        "best_val_loss": loop.best_record().get("val_loss"),
        "epochs_run": loop.epoch,
        "steps": int(state.step),
        "stopped_reason": stopped,
        "message": message,
        "params_sha256": params_sha256(state.params),
        "best_params_sha256": params_sha256(best[0]),
        "test_accuracy": None,
        "test_loss": None,
    }
    if loop.best_epoch > 0:
        test = score(*best, splits.test.unseal("fit: final score of the best-validation params"))
        summary.update(test_accuracy=test["accuracy"], test_loss=test["loss"])
        say(
            f"test (best epoch {loop.best_epoch}): loss {test['loss']:.4f}  "
            f"accuracy {test['accuracy']:.4f}"
        )
    return json_safe(summary)
