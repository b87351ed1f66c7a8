"""The train and eval steps — Chapters 6, 7 and 15: loss, gradient, update, metrics.

``make_train_step`` returns one pure function ``(state, x, y) -> (state, metrics)`` and jits it. The
same compiled step runs on CPU, GPU or TPU; on a device mesh its inputs are sharded and XLA inserts
the gradient all-reduce. The step never applies a non-finite update: when the loss or a gradient
is NaN/inf (or a gradient so large that its square overflows) it returns the old parameters and
reports the first offending leaf, so a divergence guard can stop the run with nothing corrupt in
memory or on disk.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from jaxnn import _xla, losses
from jaxnn.data.containers import TASKS
from jaxnn.train.state import TrainState, step_key

__all__ = [
    "TASKS",
    "per_example_metrics",
    "make_train_step",
    "make_eval_step",
    "make_indexed_step",
    "make_epoch_step",
]


def per_example_metrics(task: str, outputs, targets):
    """Per-example loss and correctness for ``task``.

    classification: outputs (B, C) logits, targets (B,) int -> cross-entropy, argmax == target.
    language_model: outputs (B, T, V), targets (B, T) int -> both averaged over the T positions.
    regression: outputs (B, D) or (B,), targets the same shape -> squared error averaged over D;
    correctness is NaN (accuracy is undefined for regression).

    Returns:
      ``(loss (B,), correct (B,))`` as float32.
    """
    if task == "classification":
        loss = losses.cross_entropy(outputs, targets, reduction="none")  # (B,)
        correct = (jnp.argmax(outputs, -1) == targets).astype(jnp.float32)
    elif task == "language_model":
        loss = losses.cross_entropy(outputs, targets, reduction="none").mean(-1)  # (B,)
        correct = (jnp.argmax(outputs, -1) == targets).astype(jnp.float32).mean(-1)
    elif task == "regression":
        outputs = outputs.reshape(targets.shape)
        err = (outputs - targets) ** 2
        loss = err.reshape(err.shape[0], -1).mean(-1)  # (B,)
        correct = jnp.full(loss.shape, jnp.nan, jnp.float32)
    else:
        raise ValueError(f"unknown task {task!r}; expected one of {', '.join(TASKS)}")
    return loss, correct


def _leaf_sq_norms(tree) -> jax.Array:
    """``(num_leaves,)`` squared L2 norm of each leaf, accumulated in float32."""
    return jnp.stack([jnp.sum(jnp.square(x.astype(jnp.float32))) for x in jax.tree.leaves(tree)])


def _cast_floats(tree, dtype):
    """``tree`` with its floating-point leaves cast to ``dtype`` (integer ids stay as they are)."""
    cast = lambda a: a.astype(dtype) if jnp.issubdtype(a.dtype, jnp.floating) else a
    return jax.tree.map(cast, tree)


def _weighted_mean(values, weight):
    """``sum_i w_i v_i / sum_i w_i``: the mean over the real examples (weight 1) of a batch padded
    with weight-0 rows, which then contribute nothing to the loss or its gradient."""
    weight = weight.astype(jnp.float32)
    return jnp.sum(values * weight) / jnp.maximum(jnp.sum(weight), 1.0)


def _update(tx, grads, opt_state, params):
    updates, new_opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), new_opt_state, updates


def _guarded_update(tx, grads, opt_state, params, ok):
    """``tx`` applied when ``ok``, else the old params and optimizer state (and zero updates).

    A ``lax.cond`` rather than a ``where`` over every leaf: the optimizer's arithmetic stays one
    in-place pass over the parameters, as without the guard, and the skipped branch costs nothing.
    """

    def skip(operands):
        _, opt_state, params = operands
        return params, opt_state, jax.tree.map(jnp.zeros_like, params)

    return jax.lax.cond(ok, lambda ops: _update(tx, *ops), skip, (grads, opt_state, params))


def make_train_step(
    model,
    tx: optax.GradientTransformation,
    *,
    task: str = "classification",
    schedule=None,
    augment=None,
    jitted: bool = True,
    guard: bool = True,
    update_norm: bool = False,
    compute_dtype=None,
    compiler_options: dict | None = None,
):
    """Build the train step ``(state, x, y[, weight]) -> (state, metrics)``, jitted with the state
    donated.

    Chapter 6: ``theta <- theta - eta * update(grad L(theta))``. The step key is
    ``fold_in(state.rng, state.step)``, split into a dropout key and an augmentation key (XLA
    drops both when no dropout or augmentation uses them).

    The non-finite guard (Chapter 14) costs one reduction over the gradient, shared with
    ``grad_norm``: the step is ``finite`` when the loss and every gradient leaf's squared norm
    ``sum(g^2)`` are finite, which also flags gradients so large (``|g| > ~1e19`` in float32) that
    their square overflows. A non-finite step applies no update (params, optimizer and model state
    stay as they were). Since the optimizer state and params were finite and the gradient is
    finite and bounded, the new params are finite for any finite learning rate below ``~1e19``.

    Args:
      model: a :class:`jaxnn.models.Model`.
      tx: an optax ``GradientTransformation``.
      task: one of :data:`TASKS`.
      schedule: ``step -> learning rate`` to report (optional).
      augment: ``(key, x) -> x`` applied to training inputs (optional).
      jitted: return the step jitted with ``donate_argnums=0`` (the default), or the pure
        function (to wrap in ``lax.scan``, ``chex.assert_max_traces`` or your own jit).
      guard: skip non-finite updates (the default). With False every update is applied and
        ``finite``/``bad_leaf`` are still reported.
      update_norm: also report ``update_norm``, the global norm of the applied update. It costs
        one more pass over the parameters (the update is materialized and reduced), measurable
        on an MLP step, so it is off by default and then reported as NaN.
      compute_dtype: mixed precision, e.g. ``"bfloat16"``: the forward and backward passes run
        on params and float inputs cast to this dtype, while the master params, the gradients
        (cast back by the cast's own derivative), the optimizer state and the loss stay float32.
        ``None`` (the default) computes in the params' dtype.
      compiler_options: XLA options for the jitted step; ``None`` (the default) takes jaxnn's
        choice for the model's name from :mod:`jaxnn._xla` (CPU only), ``{}`` none at all.

    The optional ``weight`` (B,) of 1s and 0s marks the real examples of a batch padded to a
    shape the devices divide (the last batch of an epoch, :func:`jaxnn.train.fit`): the loss and
    accuracy are then ``sum_i w_i l_i / sum_i w_i``, so a padded row adds nothing to the update.
    Without it they are plain means over the batch. (A padded row still enters batch-norm batch
    statistics; the loop pads only on a device mesh, by fewer rows than there are devices.)

    Returns:
      The step. Metrics: ``loss``, ``accuracy``, ``grad_norm``, ``update_norm``, ``lr``,
      ``finite`` (bool) and ``bad_leaf`` (index of the first parameter leaf whose gradient is
      non-finite, -1 if none).
    """
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; expected one of {', '.join(TASKS)}")

    def train_step(state: TrainState, x, y, weight=None):
        drop_key, aug_key = jax.random.split(step_key(state))
        if augment is not None:
            x = augment(aug_key, x)

        def loss_fn(params):
            inputs = x
            if compute_dtype is not None:
                params, inputs = _cast_floats((params, x), compute_dtype)
            outputs, model_state = model.apply(
                params, inputs, state=state.model_state, train=True, key=drop_key
            )
            outputs = outputs.astype(jnp.float32)
            loss, correct = per_example_metrics(task, outputs, y)
            if weight is None:
                return loss.mean(), (model_state, correct.mean())
            return _weighted_mean(loss, weight), (model_state, _weighted_mean(correct, weight))

        (loss, (model_state, acc)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
        sq = _leaf_sq_norms(grads)  # (num_leaves,): the guard and grad_norm in one pass
        leaf_ok = jnp.isfinite(sq)
        ok = jnp.isfinite(loss) & jnp.all(leaf_ok)
        if guard:
            params, opt_state, updates = _guarded_update(
                tx, grads, state.opt_state, state.params, ok
            )
            model_state = jax.tree.map(
                lambda new, old: jnp.where(ok, new, old), model_state, state.model_state
            )
        else:
            params, opt_state, updates = _update(tx, grads, state.opt_state, state.params)
        new_state = TrainState(
            step=state.step + 1,
            params=params,
            opt_state=opt_state,
            rng=state.rng,
            model_state=model_state,
        )
        metrics = {
            "loss": loss,
            "accuracy": acc,
            "grad_norm": jnp.sqrt(jnp.sum(sq)),
            "update_norm": optax.global_norm(updates) if update_norm else jnp.float32(jnp.nan),
            "lr": jnp.asarray(
                schedule(state.step) if schedule is not None else jnp.nan, jnp.float32
            ),
            "finite": ok,
            "bad_leaf": jnp.where(jnp.all(leaf_ok), -1, jnp.argmin(leaf_ok)),
        }
        return new_state, metrics

    if not jitted:
        return train_step
    workload = getattr(model, "name", None)
    return _xla.jit(
        train_step, workload=workload, compiler_options=compiler_options, donate_argnums=0
    )


def make_eval_step(model, *, task: str = "classification"):
    """Build the un-jitted eval step ``(params, model_state, x, y, weight) -> sums``.

    No gradient, no dropout (``train=False``), running statistics for batch norm. Returns the
    weighted sums ``{"loss", "correct", "count"}`` so that padded examples (weight 0) count for
    nothing and a whole split is scored exactly once per example.
    """

    def eval_step(params, model_state, x, y, weight):
        outputs, _ = model.apply(params, x, state=model_state, train=False)
        loss, correct = per_example_metrics(task, outputs, y)
        return {
            "loss": jnp.sum(loss * weight),
            "correct": jnp.sum(jnp.where(weight > 0, correct, 0.0) * weight),
            "count": jnp.sum(weight),
        }

    return eval_step


def make_indexed_step(train_step, *, batch_sharding=None):
    """Build ``(state, x_all, y_all, idx[, weight]) -> (state, metrics)``: a step that gathers its
    own batch.

    ``x_all``/``y_all`` hold the whole training split on device and ``idx`` (B,) the batch's
    example indices (``weight``, if given, goes on to ``train_step``), so the only input a step
    needs from the host is B integers (Chapter 9: the pipeline must not be the bottleneck). On a
    mesh the gathered batch is constrained to
    ``batch_sharding`` (split over the ``"data"`` axis).
    """

    def indexed_step(state, x_all, y_all, idx, *weight):
        x, y = x_all[idx], y_all[idx]
        if batch_sharding is not None:
            x = jax.lax.with_sharding_constraint(x, batch_sharding)
            y = jax.lax.with_sharding_constraint(y, batch_sharding)
        return train_step(state, x, y, *weight)

    return indexed_step


def make_epoch_step(train_step, *, batch_sharding=None):
    """Build ``(state, x_all, y_all, idx) -> (state, metrics)``: one epoch as one ``lax.scan``.

    ``idx`` (num_batches, B) holds the example indices of each batch in the order the Python loop
    visits them; the scan body is :func:`make_indexed_step`, the loop's own step, so the scan
    performs exactly the same updates. Metrics come back stacked, one row per step.
    """
    indexed_step = make_indexed_step(train_step, batch_sharding=batch_sharding)

    def epoch(state, x_all, y_all, idx):
        return jax.lax.scan(lambda st, i: indexed_step(st, x_all, y_all, i), state, idx)

    return epoch
