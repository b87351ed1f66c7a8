"""The two training probes of Chapter 14: the tiny-subset overfit and the learning-rate range.

Both train the model for a few hundred steps in one compiled ``lax.scan`` and read the loss
curve: :func:`overfit_tiny_batch` on a handful of examples, :func:`lr_range_test` over an
exponential sweep of learning rates.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np

from jaxnn._checks import check_positive_int
from jaxnn.diagnostics._common import default_loss
from jaxnn.diagnostics.report import Report

__all__ = ["OverfitReport", "LRRangeReport", "overfit_tiny_batch", "lr_range_test"]


# ---------------------------------------------------------------------------------------------
# The tiny-subset overfit test


@dataclasses.dataclass(frozen=True)
class OverfitReport(Report):
    """What :func:`overfit_tiny_batch` found (verdict ``overfits`` or ``fails``).

    Attributes:
      losses: the loss at each step.
      initial_loss: ``L_0``.
      final_loss: ``L_min``, the lowest loss of the last tenth of the steps.
      final_accuracy: the accuracy on the batch at the last step.
      steps: training steps.
      examples: examples in the batch.
    """

    losses: tuple
    initial_loss: float
    final_loss: float
    final_accuracy: float
    steps: int
    examples: int

    OK = ("overfits",)
    PROBLEMS = ("fails",)


def overfit_tiny_batch(
    model,
    tx,
    batch,
    *,
    steps: int = 200,
    task: str = "classification",
    seed: int = 0,
    max_loss_ratio: float = 0.05,
) -> OverfitReport:
    """Train on a handful of examples and say whether the loss goes to about zero.

    Chapter 14: "verify that loss decreases on a tiny subset of examples". A network with enough
    capacity memorizes a few examples in a few hundred steps; if it cannot, the fault is in the
    pipeline (inputs and labels that do not match, a loss on the wrong outputs), the optimizer
    (a learning rate far too high or too low) or a model too small, not in the amount of data.

    The batch is trained ``steps`` times with the training loop's own step
    (:func:`jaxnn.train.step.make_train_step`, one ``lax.scan``), from ``model.init``. With
    ``L_0`` the first loss and ``L_min`` the lowest loss of the last tenth of the steps, the
    verdict is ``overfits`` when every example is classified right and ``L_min <= L_0 / 2``, or
    when ``L_min <= max_loss_ratio * L_0`` (about 0.12 nats from the
    2.3 of ten classes at chance), and ``fails`` otherwise.

    Args:
      model: a :class:`jaxnn.models.Model`.
      tx: the optax optimizer to test (the one the run would use).
      batch: ``(x, y)`` with a few examples (8 to 64).
      steps: training steps on the batch.
      task: see :data:`jaxnn.train.step.TASKS`.
      seed: initialization seed.
      max_loss_ratio: final-to-first loss ratio that counts as memorized.

    Returns:
      An :class:`OverfitReport` with the loss curve.
    """
    from jaxnn import _xla
    from jaxnn.train.state import create_train_state
    from jaxnn.train.step import make_train_step

    steps = check_positive_int("overfit_tiny_batch", steps, "steps")
    x, y = jnp.asarray(batch[0]), jnp.asarray(batch[1])
    step = make_train_step(model, tx, task=task, jitted=False)

    def run(state):
        return jax.lax.scan(lambda s, _: step(s, x, y), state, None, length=steps)[1]

    workload = getattr(model, "name", None)
    metrics = _xla.jit(run, workload=workload)(create_train_state(model, tx, seed))
    losses = np.asarray(metrics["loss"], np.float64)  # (steps,)
    acc = np.asarray(metrics["accuracy"], np.float64)
    tail = losses[-max(1, steps // 10) :]
    first, last = float(losses[0]), float(np.nanmin(tail)) if np.isfinite(tail).any() else math.nan
    # Memorized: the loss is near zero, or every example is fitted and the loss has halved
    # (a small learning rate gets there before the loss is near zero).
    fitted = float(acc[-1]) == 1.0 and last <= 0.5 * first
    ok = math.isfinite(last) and (last <= max_loss_ratio * first or fitted)
    verdict = "overfits" if ok else "fails"
    why = f"the loss on {len(x)} examples went from {first:.3g} to {last:.3g} in {steps} steps"
    why += " (memorized)" if ok else f", above {max_loss_ratio:g} of its start: not memorized"
    return OverfitReport(
        verdict, why, tuple(losses.tolist()), first, last, float(acc[-1]), steps, len(x)
    )


# ---------------------------------------------------------------------------------------------
# The learning-rate range test


@dataclasses.dataclass(frozen=True)
class LRRangeReport(Report):
    """What :func:`lr_range_test` found (``ok``, ``too_high``, ``too_low``, ``inconclusive``).

    Attributes:
      lrs, losses, smoothed: the sweep, up to the divergence point.
      min_loss_lr: the rate at the lowest smoothed loss.
      steepest_lr: the rate where the smoothed loss fell fastest per decade.
      suggested_lr: ``min_loss_lr / 10``.
      suggested_range: ``(min_loss_lr / 100, min_loss_lr / 3)``.
      divergence_lr: the rate at which the loss diverged (``None`` if it never did).
      lr: the rate that was judged (``None`` if none was given).
    """

    lrs: tuple
    losses: tuple
    smoothed: tuple
    min_loss_lr: float | None
    steepest_lr: float | None
    suggested_lr: float | None
    suggested_range: tuple | None
    divergence_lr: float | None
    lr: float | None

    OK = ("ok", "inconclusive")
    PROBLEMS = ("too_high", "too_low")


def _sweep(model, data, lrs, *, optimizer, batch_size, task, seed):
    """Train once at each rate in ``lrs`` in turn; return the loss of each step (before it)."""
    from jaxnn import optim
    from jaxnn.train.state import create_train_state

    tx, _ = optim.make_optimizer(optimizer, 1.0)
    state = create_train_state(model, tx, seed)
    loss_of = default_loss(task)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(data), (len(lrs), min(batch_size, len(data))))  # (S, B)
    x_all, y_all = jnp.asarray(data.x), jnp.asarray(data.y)

    def step(carry, inputs):
        params, model_state, opt_state = carry
        lr, rows, i = inputs

        def loss_fn(p):
            out, new_state = model.apply(
                p, x_all[rows], state=model_state, train=True, key=jax.random.fold_in(state.rng, i)
            )
            return jnp.mean(loss_of(out, y_all[rows])), new_state

        (loss, new_state), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        params = jax.tree.map(lambda p, u: p + lr * u, params, updates)
        return (params, new_state, opt_state), loss

    carry = (state.params, state.model_state, state.opt_state)
    inputs = (jnp.asarray(lrs, jnp.float32), jnp.asarray(idx), jnp.arange(len(lrs)))
    losses = jax.jit(lambda c, i: jax.lax.scan(step, c, i)[1])(carry, inputs)
    return np.asarray(losses, np.float64)


def _smooth(losses, beta: float):
    out, avg = np.empty_like(losses), 0.0
    for i, v in enumerate(losses):
        avg = beta * avg + (1 - beta) * v
        out[i] = avg / (1 - beta ** (i + 1))
    return out


def _divergence(losses, smoothed, factor: float) -> int:
    """Index of the first step that diverged (``len`` if none)."""
    best = np.minimum.accumulate(np.where(np.isfinite(smoothed), smoothed, np.inf))
    bad = ~np.isfinite(losses) | ~np.isfinite(smoothed) | (smoothed > factor * best)
    return int(np.argmax(bad)) if bad.any() else len(losses)


def _lr_verdict(lr, no_signal, min_lr, div_lr, low_factor) -> tuple[str, str]:
    if no_signal:
        return "inconclusive", "the loss fell at no rate of the sweep (too few steps to judge)"
    if lr is None:
        return "ok", f"the loss falls fastest below {min_lr:.2g}"
    if (div_lr is not None and lr >= div_lr) or lr > min_lr:
        return "too_high", f"lr {lr:.2g} is past the loss minimum of the sweep at {min_lr:.2g}"
    if lr < low_factor * min_lr:
        return "too_low", f"lr {lr:.2g} is over {1 / low_factor:.0f}x below {min_lr:.2g}"
    return "ok", f"lr {lr:.2g} is below the loss minimum of the sweep at {min_lr:.2g}"


def lr_range_test(
    model,
    data,
    *,
    lr: float | None = None,
    optimizer: str = "adam",
    start_lr: float = 1e-6,
    end_lr: float = 10.0,
    steps: int = 200,
    batch_size: int = 64,
    task: str = "classification",
    seed: int = 0,
    smoothing: float = 0.9,
    diverge_factor: float = 4.0,
    min_drop: float = 0.05,
    low_factor: float = 1e-3,
) -> LRRangeReport:
    """Sweep the learning rate exponentially while training and read the loss curve.

    Chapter 14 (and Chapter 8): a learning rate that is too high makes the loss oscillate or
    diverge; one too low makes progress so slow that the run looks like underfitting. One run of
    ``steps`` steps from ``model.init`` raises the rate geometrically,

        eta_i = start_lr * (end_lr / start_lr) ** (i / (steps - 1)),

    on random batches of ``data``. The losses are smoothed by a bias-corrected exponential
    average ``s_i`` (weight ``smoothing``); the sweep diverges at the first step whose loss is
    not finite or whose ``s_i`` exceeds ``diverge_factor`` times the lowest ``s`` so far, and the
    curve is cut there. With ``eta*`` the rate at the lowest ``s``:

    - ``inconclusive``: ``s`` never fell by ``min_drop`` of its start, so there is no minimum to
      judge by (a slow learner needs a longer sweep; a model that learns nothing at all fails
      :func:`overfit_tiny_batch`);
    - ``too_high``: ``lr > eta*`` or ``lr`` at or past the divergence point;
    - ``too_low``: ``lr < low_factor * eta*``;
    - ``ok`` otherwise; the suggestion is ``eta* / 10`` (the rate a run can hold from the start).

    Args:
      model: a :class:`jaxnn.models.Model`.
      data: a :class:`jaxnn.data.Dataset` (the training split).
      lr: the learning rate to judge (optional).
      optimizer: a name from :func:`jaxnn.optim.make_optimizer`; its step direction is scaled by
        ``eta_i`` each step.
      start_lr, end_lr: the sweep's ends.
      steps: sweep length.
      batch_size: examples per step.
      task: see :data:`jaxnn.train.step.TASKS`.
      seed: initialization and batch seed.
      smoothing: weight of the exponential average in ``[0, 1)``.
      diverge_factor: smoothed-loss rise over its minimum that counts as divergence.
      min_drop: relative fall of the smoothed loss that counts as learning.
      low_factor: share of ``eta*`` below which ``lr`` is too low.

    Returns:
      An :class:`LRRangeReport`.
    """
    steps = check_positive_int("lr_range_test", steps, "steps")
    if not 0 < start_lr < end_lr:
        raise ValueError(f"lr_range_test: expected 0 < start_lr < end_lr, got {start_lr}, {end_lr}")
    lrs = start_lr * (end_lr / start_lr) ** (np.arange(steps) / max(steps - 1, 1))
    losses = _sweep(
        model, data, lrs, optimizer=optimizer, batch_size=batch_size, task=task, seed=seed
    )
    smoothed = _smooth(np.where(np.isfinite(losses), losses, np.inf), smoothing)
    stop = max(_divergence(losses, smoothed, diverge_factor), 1)
    div_lr = float(lrs[stop]) if stop < steps else None
    lrs, losses, smoothed = lrs[:stop], losses[:stop], smoothed[:stop]
    best = int(np.argmin(smoothed))
    min_lr = float(lrs[best])
    start = float(np.median(losses[:5]))
    no_signal = not smoothed[best] < (1 - min_drop) * start
    slope = np.gradient(smoothed[: best + 1], np.log10(lrs[: best + 1])) if best > 1 else [0.0]
    steepest = float(lrs[int(np.argmin(slope))])
    verdict, why = _lr_verdict(lr, no_signal, min_lr, div_lr, low_factor)
    return LRRangeReport(
        verdict=verdict,
        message=why + (f"; diverges at {div_lr:.2g}" if div_lr is not None else ""),
        lrs=tuple(lrs.tolist()),
        losses=tuple(losses.tolist()),
        smoothed=tuple(smoothed.tolist()),
        min_loss_lr=None if no_signal else min_lr,
        steepest_lr=None if no_signal else steepest,
        suggested_lr=None if no_signal else min_lr / 10,
        suggested_range=None if no_signal else (min_lr / 100, min_lr / 3),
        divergence_lr=div_lr,
        lr=lr,
    )
