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

import contextlib
import dataclasses
import functools
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from jaxnn import _contained, _xla, optim, parallel
from jaxnn.data import augment as augment_lib
from jaxnn.data import pipeline, streaming
from jaxnn.errors import UserError
from jaxnn.train import agree, placement
from jaxnn.train import run as run_lib
from jaxnn.train.config import Execution, FitConfig, LoopPolicy, Optimization, Output
from jaxnn.train.logger import MetricsLogger, format_duration, json_safe
from jaxnn.train.state import TrainState, create_train_state, params_sha256
from jaxnn.train.step import (
    make_epoch_step,
    make_eval_step,
    make_indexed_step,
    make_train_step,
)

__all__ = ["FitConfig", "FitResult", "LoopState", "fit", "evaluate", "train_epoch"]


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

    def add(self, record: dict, policy: LoopPolicy) -> bool:
        """Append epoch ``record`` and count it for early stopping; True when it is the new best."""
        self.epoch = record["epoch"]
        self.history.append(record)
        value = record[policy.monitor]
        sign = -1.0 if policy.monitor == "val_loss" else 1.0
        better = self.best_value is None or sign * (value - self.best_value) > policy.min_delta
        if better:
            self.best_value, self.best_epoch, self.bad_epochs = value, record["epoch"], 0
        else:
            self.bad_epochs += 1
        return better

    def early_stop_message(self, policy: LoopPolicy) -> str:
        """Why to stop early (Chapter 13), or ``""`` to go on."""
        if not policy.patience or self.bad_epochs < policy.patience:
            return ""
        return (
            f"early stopping: {policy.monitor} did not improve for {policy.patience} epochs; "
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


def train_epoch(step_fn, state: TrainState, inputs, *, scan: bool, bar=None, check=None, last=None):
    """Run one epoch: ``step_fn(state, *batch)`` for each batch of ``inputs``.

    With ``scan`` the epoch is one call of a scanned step (``inputs`` yields one item) whose
    metrics come back stacked. ``last``, if given, is ``(last_fn, batch)``: the epoch's last,
    smaller batch and the step compiled for its shape, run after the others (Chapter 9: every
    example once per epoch). The metrics stay on the device until the epoch ends, then come to
    the host in one transfer. ``check()``, if given, runs after each step is dispatched (``fit``
    passes :meth:`jaxnn.train.agree.Agreed.check`, which raises on Ctrl-C or SIGTERM).

    Returns:
      ``(state, rows)``: the new state and one host dict of metrics per step.
    """
    check = check or (lambda: None)
    rows = []
    for batch in inputs:
        state, metrics = step_fn(state, *batch)
        rows.append(metrics)
        if bar is not None and not scan:
            bar.update(1)
        check()
    if last is not None:
        state, metrics = last[0](state, *last[1])
        rows.append(metrics)
        check()
    rows = _unstacked(parallel.to_host(rows), scan)
    if bar is not None:
        bar.update(len(rows) if scan else int(last is not None))
    return state, rows


def _unstacked(rows, scan: bool) -> list:
    """The host metrics of an epoch as one dict per step: a scanned epoch's first item holds
    the stacked rows of its steps."""
    if not scan:
        return rows
    stacked, *tail = rows
    return [{k: v[i] for k, v in stacked.items()} for i in range(len(stacked["loss"]))] + tail


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


def check_divergence(rows, first_step: int, loop: LoopState, policy: LoopPolicy, params) -> str:
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
        elif loss > policy.divergence_factor * loop.initial_loss:
            return (
                f"training diverged at step {step}: loss {loss:.4g} is more than "
                f"{policy.divergence_factor:g}x the first step's loss {loop.initial_loss:.4g}"
            )
    return ""


# ---------------------------------------------------------------------------------------------
# Setting up: checks, the compiled step and its inputs, checkpoints.


def _clip_batch(cfg: FitConfig, n: int) -> tuple[FitConfig, str]:
    """A batch size above the ``n`` training examples, clipped to them (rounded down to a
    multiple of the devices), and the one-line notice; unchanged otherwise."""
    devices = max(cfg.devices, 1)
    if cfg.batch_size <= n:
        return cfg, ""
    clipped = n // devices * devices
    if clipped == 0:
        raise UserError(
            f"fit: expected at least {devices} training examples for {devices} devices, got {n}"
        )
    notice = (
        f"batch size {cfg.batch_size} is more than the {n} training examples: clipped to "
        f"{clipped} (one step per epoch)"
    )
    return dataclasses.replace(cfg, batch_size=clipped), notice


def _check_fit_args(model, splits, cfg: FitConfig, out_dir, resume) -> tuple[FitConfig, str]:
    cfg, notice = _clip_batch(cfg, len(splits.train))
    if resume and (out_dir is None or not cfg.checkpoint):
        raise UserError("fit: resume=True needs out_dir and checkpoints (checkpoint=True)")
    _check_model_fits_data(model, splits)
    if cfg.monitor == "val_accuracy" and splits.info.task == "regression":
        cfg = dataclasses.replace(cfg, monitor="val_loss")
    return cfg, notice


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


def _mesh(run: Execution):
    """The device mesh a sharded run uses, or None (one device, no mesh)."""
    return placement.mesh_of(run)


def _data_on_device(run: Execution, train) -> bool:
    """Whether the training split lives on the device(s): always with scan (one process only);
    never for a split that stays on disk (a pack, :mod:`jaxnn.data.streaming`)."""
    if run.scan and jax.process_count() > 1:
        raise UserError("fit: scan=True runs on one process; got a multi-process run")
    if streaming.is_lazy(train.x):
        if run.scan:
            raise UserError(
                "fit: scan=True keeps the training split on the device; a pack streams from "
                "disk: train without scan"
            )
        return False
    return run.scan or (run.device_data and jax.process_count() == 1)


class _Steps(NamedTuple):
    """The compiled steps of ``fit``: ``full`` for the batches of ``batch_size`` (or, with scan,
    the epoch's full batches), ``last`` for the epoch's last, smaller batch (compiled on first
    use, a second shape), and the training split on the device (None: host batches)."""

    full: Any
    last: Any
    data: Any


def _compile_step(
    model, tx, schedule, splits, run: Execution, mesh, compiler_options, state
) -> _Steps:
    """The jitted steps ``fit`` runs, and the training split on the device (None: host batches).
    On a mesh the steps return the state with the shardings ``state`` has."""
    augment = None if run.augment == "none" else augment_lib.get(run.augment, splits.info)
    step = make_train_step(
        model, tx, task=splits.info.task, schedule=schedule, augment=augment, jitted=False,
        compute_dtype=None if run.dtype == "float32" else run.dtype,
    )  # fmt: skip
    data, last = None, step
    if _data_on_device(run, splits.train):
        sharding = None if mesh is None else parallel.batch_sharding(mesh)
        last = make_indexed_step(step, batch_sharding=sharding)
        step = make_epoch_step(step, batch_sharding=sharding) if run.scan else last
        train = (splits.train.x, splits.train.y)
        data = jax.device_put(train) if mesh is None else parallel.replicate(train, mesh)
    settings = {
        "workload": getattr(model, "name", None), "compiler_options": compiler_options,
        "donate_argnums": 0, **placement.jit_kwargs(mesh, state),
    }  # fmt: skip
    return _Steps(_xla.jit(step, **settings), _xla.jit(last, **settings), data)


def _planner(n: int, run: Execution, mesh):
    """``epoch -> EpochPlan`` of the run: the last batch padded to a multiple of the devices."""
    return functools.partial(
        pipeline.epoch_plan, n, run.batch_size, seed=run.seed, last_batch=run.last_batch,
        multiple=1 if mesh is None else mesh.size,
    )  # fmt: skip


def _host_batch(train, idx, mesh, *weight):
    """The host batch of examples ``idx`` (and its weights), sharded over a mesh if any."""
    if mesh is None:  # jit's dispatch moves NumPy inputs faster than device_put
        return (train.x[idx], train.y[idx], *weight)
    rows = parallel.process_slice(len(idx))  # each process reads only the rows it feeds
    mine = idx[rows]
    batch = (train.x[mine], train.y[mine], *(w[rows] for w in weight))
    return parallel.shard_batch(batch, mesh)


def _epoch_inputs(train, run: Execution, plan: pipeline.EpochPlan, mesh, steps: _Steps):
    """This epoch's step inputs and its last batch: ``(inputs, last)``, with inputs ``(x, y)``
    host batches or ``(x_all, y_all, idx)`` on device, and ``last`` the ``(last step, batch)``
    pair :func:`train_epoch` takes (None without a last batch)."""
    inputs: Iterable[Any]
    if steps.data is None:
        inputs = (_host_batch(train, idx, mesh) for idx in plan.full)
        last = None if plan.last is None else _host_batch(train, plan.last, mesh, plan.last_weight)
    else:
        inputs = [(*steps.data, plan.full)] if run.scan else ((*steps.data, i) for i in plan.full)
        last = None if plan.last is None else (*steps.data, plan.last, plan.last_weight)
    return inputs, None if last is None else (steps.last, last)


def make_optimizer(opt: Optimization, *, total_steps: int):
    """The optimizer and schedule that the :attr:`FitConfig.optimization` settings ask for.

    Raises:
      UserError: if the settings do not fit the run (warm-up steps beyond its ``total_steps``,
        warm-up with a schedule that has none).
    """
    if opt.warmup_steps and opt.warmup_steps >= total_steps:
        raise UserError(
            f"FitConfig: expected warmup_steps < the run's {total_steps} steps (max_steps, or "
            f"epochs x batches per epoch), got {opt.warmup_steps}"
        )
    try:
        return optim.make_optimizer(
            opt.optimizer,
            opt.lr,
            schedule=opt.schedule,
            total_steps=total_steps,
            warmup_steps=opt.warmup_steps,
            weight_decay=opt.weight_decay,
            clip_norm=opt.clip_norm or None,
            beta2=opt.beta2,
            min_lr=opt.min_lr,
            decay_steps=opt.decay_steps or None,
            decay_mask=opt.weight_decay_mask,
        )
    except UserError:
        raise
    except ValueError as err:  # "make_schedule: expected ..." -> "FitConfig: expected ..."
        raise UserError(f"FitConfig: {str(err).split(': ', 1)[-1]}") from None


def _progress(steps: int, epoch: int, epochs: int, show: bool, walls=()):
    """The epoch's progress bar, shown on a terminal only (a log file gets the epoch lines).

    After the first epoch of this invocation the bar also shows the run's ETA: the mean wall time
    of the epochs so far (``walls``) times the epochs left, this one included.
    """
    import sys

    eta = f" (run ETA {format_duration(np.mean(walls) * (epochs - epoch))})" if walls else ""
    return tqdm(
        total=steps,
        desc=f"epoch {epoch + 1}/{epochs}{eta}",
        leave=False,
        disable=not (show and sys.stderr.isatty()),
        dynamic_ncols=True,
    )


def _run_id(out: Path | None, resume: bool) -> str:
    """The run's id: a resumed run keeps the one in its ``config.json``."""
    if resume and out is not None and (out / run_lib.CONFIG).exists():
        saved = run_lib.read_config(out).get("run_id")
        if isinstance(saved, str) and saved:
            return saved
    return run_lib.new_run_id()


def _checkpoints(out: Path | None, output: Output, monitor: str, run_id: str):
    """The run's checkpoint manager, ranking by ``monitor``; None when nothing is saved."""
    if out is None or not output.checkpoint:
        return None
    from jaxnn.train.checkpoint import CheckpointManager

    mode = "min" if monitor == "val_loss" else "max"
    return CheckpointManager(
        out / "checkpoints",
        keep_last=output.keep_last,
        keep_best=output.keep_best,
        best_metric=monitor,
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


def _save(ckpt, state, best, loop: LoopState, val: dict) -> None:
    """Checkpoint the train state, the best-validation pair and the loop's position (if on)."""
    if ckpt is None:
        return
    metrics = {"val_accuracy": val["accuracy"], "val_loss": val["loss"]}
    ckpt.save(int(state.step), (state, best), extra=dataclasses.asdict(loop), metrics=metrics)


@contextlib.contextmanager
def _closing(*resources):
    """Close each resource that is not None when the block ends, however it ends."""
    try:
        yield
    finally:
        for resource in resources:
            if resource is not None:
                resource.close()


def _write_json(out: Path | None, name: str, obj) -> None:
    """Write ``out/name`` atomically, as strict JSON (no NaN or Infinity), never through a link
    (:func:`jaxnn.train.run.write_json`); nothing without out."""
    if out is None:
        return
    run_lib.write_json(_contained.ensure_dir("fit", out) / name, obj)


def _epoch_mean(rows, key: str, sizes) -> float:
    """The epoch's mean of a step metric, each step weighted by its real examples (a plain mean
    when every step has as many)."""
    values = [float(r[key]) for r in rows]
    if len(set(sizes)) <= 1:
        return float(np.mean(values))
    return float(np.average(values, weights=sizes))


def _epoch_record(epoch, state, rows, val, clocks, sizes) -> dict:
    """The epoch's record. ``clocks`` is ``(start, previous)``: when this epoch started and when
    the previous record was made; ``seconds`` is this epoch's training plus evaluation,
    ``wall_seconds`` the clock time since the previous record (its logging, curves and
    checkpoint included), so the ``wall_seconds`` of a run add up to its time on the clock.
    ``sizes`` are the real examples of each step, the weights of the epoch's means."""
    now = time.perf_counter()
    start, previous = clocks
    mean = {k: _epoch_mean(rows, k, sizes) for k in rows[0] if k not in ("bad_leaf", "finite")}
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
        "seconds": now - start,
        "wall_seconds": now - previous,
    }


def _copy(tree):
    return jax.tree.map(jnp.copy, tree)  # the train state is donated to the step


class _Host(NamedTuple):
    """This process's part besides training: process 0 writes the run's records and speaks."""

    records: Path | None  # where the records go; None in memory and on the other processes
    verbose: bool  # print the epoch lines and messages
    bar: bool  # show the progress bar

    @classmethod
    def of(cls, out: Path | None, *, verbose: bool, progress: bool) -> _Host:
        main = jax.process_index() == 0
        return cls(out if main else None, verbose and main, progress and main)

    def say(self, message: str) -> None:
        if self.verbose and message:
            print(message, flush=True)


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
    # The settings, checked against the data, by concern; who writes and who speaks.
    cfg, notice = _check_fit_args(model, splits, cfg, out_dir, resume)
    policy, run = cfg.policy, cfg.execution
    out = Path(out_dir) if out_dir is not None else None
    host = _Host.of(out, verbose=verbose, progress=cfg.output.progress)
    host.say(notice)
    # The optimizer and the train state: fresh, or where a resumed run stopped.
    mesh = _mesh(run)
    steps = pipeline.steps_per_epoch(len(splits.train), run.batch_size, run.last_batch)
    total, epochs = policy.total_steps(steps), policy.epochs_for(steps)
    tx, schedule = make_optimizer(cfg.optimization, total_steps=total)
    state = create_train_state(model, tx, run.seed)
    run_id = agree.shared_run_id(_run_id(out, resume))
    record = _config_record(model, splits, cfg, run_id, run_info)
    agree.check_same_run(_agreed_part(record, splits))  # every process runs the same
    best, loop = _copy((state.params, state.model_state)), LoopState()
    ckpt = _checkpoints(out, cfg.output, policy.monitor, run_id)
    state, best = placement.place_state((state, best), mesh, run)  # restored onto this mesh
    if resume:
        state, best, loop = _resume(ckpt, state, best, host.say, run_id)
    # The run directory's records, and the logs.
    _write_json(host.records, run_lib.CONFIG, record)
    _write_json(host.records, run_lib.DATA_INFO, run_lib.info_to_json(splits.info))
    logger = MetricsLogger(
        host.records, epochs=epochs, history=loop.history if resume else None,
        verbose=host.verbose,
    )  # fmt: skip
    # The compiled train step and scoring.
    compiled = _compile_step(model, tx, schedule, splits, run, mesh, compiler_options, state)
    plan_of = _planner(len(splits.train), run, mesh)
    score = functools.partial(
        evaluate, model, task=splits.info.task, batch_size=run.eval_batch_size, mesh=mesh,
        compiler_options=compiler_options,
    )  # fmt: skip
    # The epochs. Ctrl-C and SIGTERM act at the checks: after each step, evaluation and save.
    stopped, message, clock = "completed", "", time.perf_counter()
    walls: list[float] = []
    with agree.deferred() as flags, _closing(logger, ckpt):
        for epoch in range(loop.epoch, epochs):
            t0, first_step = time.perf_counter(), int(state.step)
            plan = pipeline.first_steps(plan_of(epoch=epoch), total - epoch * steps)
            inputs, last = _epoch_inputs(splits.train, run, plan, mesh, compiled)
            with _progress(plan.steps, epoch, epochs, host.bar, walls) as bar:
                state, rows = train_epoch(
                    compiled.full, state, inputs, scan=run.scan, bar=bar, check=flags.check,
                    last=last,
                )  # fmt: skip
            if message := check_divergence(rows, first_step, loop, policy, best[0]):
                stopped = "diverged"
                break
            val = score(state.params, state.model_state, splits.val)
            flags.check()
            record = _epoch_record(epoch, state, rows, val, (t0, clock), plan.sizes)
            walls.append(record["wall_seconds"])
            clock = t0 + record["seconds"]
            if loop.add(record, policy):
                best = _copy((state.params, state.model_state))
            logger.log_epoch(record, best_epoch=loop.best_epoch)
            _save(ckpt, state, best, loop, val)
            flags.check_now()  # after the save: it completes before a signal acts
            if message := loop.early_stop_message(policy):
                stopped = "early_stopping"
                break
    # The end: the test split, scored once with the best-validation params.
    if message:
        host.say(message)
    summary = _summary(
        model, splits, policy.monitor, loop, state, best, stopped, message, score, host.say
    )
    _write_json(host.records, "summary.json", summary)
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


def _agreed_part(record: dict, splits) -> dict:
    """What every process of a run must agree on: the record but its run id and history, and
    the sizes of the splits. The data snapshot, written by process 0 alone (its record only
    there), is left out: the data's sha256 beside it is what the processes compare."""
    sizes = [len(splits.train), len(splits.val), len(splits.test)]
    part = {k: v for k, v in record.items() if k not in ("run_id", "history")}
    data = part.get("data")
    if isinstance(data, dict) and isinstance(data.get("source"), dict):
        source = {k: v for k, v in data["source"].items() if k != "snapshot"}
        part["data"] = {**data, "source": source}
    return {**part, "sizes": sizes}


def _summary(model, splits, monitor, loop: LoopState, state, best, stopped, message, score, say):
    """The run's summary; the test split is opened here, once, with the best-validation params."""
    summary = {
        "model": model.name,
        "dataset": splits.info.name,
        "best_epoch": loop.best_epoch,
        f"best_{monitor}": loop.best_value,
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
