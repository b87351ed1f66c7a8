"""The first NaN or infinity: the op, the layer before it and the examples (Chapter 14).

:func:`find_nonfinite` evaluates the loss, and if need be its gradient, through the jaxpr
interpreter (:mod:`jaxnn.diagnostics.interpreter`) and stops at the first equation whose inputs
are finite and whose output is not.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from jaxnn.diagnostics._common import default_loss, default_state, unrolled
from jaxnn.diagnostics.interpreter import Interpreter, Stop, evaluate, finite, is_float
from jaxnn.diagnostics.report import Report

__all__ = ["NonfiniteReport", "find_nonfinite"]


class _FirstNonfinite(Interpreter):
    """Stop at the first equation whose inputs are finite and whose output is not.

    Calls are entered only when their output goes non-finite, to find the equation inside that
    did it (the call itself is blamed if none did).

    Attributes:
      culprit: ``{"op", "layer", "value"}`` of that equation, or ``None``.
    """

    def __init__(self):
        super().__init__()
        self.culprit: dict | None = None

    def visit(self, eqn, invals, outvals, origins, frame) -> None:
        if all(map(finite, invals)) and not all(map(finite, outvals)):
            self.enter(eqn, invals, origins)  # a call: find the equation inside it
            self.culprit = {"op": eqn.primitive.name, "layer": self.layer, "value": outvals}
            raise Stop
        self.note_layer(eqn, origins)


@dataclasses.dataclass(frozen=True)
class NonfiniteReport(Report):
    """What :func:`find_nonfinite` found (verdict ``finite`` or ``nonfinite``).

    Attributes:
      stage: ``forward`` (a value of the loss computation) or ``backward`` (a gradient).
      op: the primitive whose output first went non-finite from finite inputs (``log``,
        ``div``, ``exp``, ...).
      layer: the latest layer evaluated before that op (``['dense_1']``), or ``input``.
      parameter: for ``backward``, the first parameter leaf whose gradient is non-finite.
      examples: indices (into the batch) of the examples that produce a non-finite value alone.
    """

    stage: str | None = None
    op: str | None = None
    layer: str | None = None
    parameter: str | None = None
    examples: tuple = ()

    OK = ("finite",)
    PROBLEMS = ("nonfinite",)


def _rows_with_nonfinite(values, batch: int):
    for v in values:
        if is_float(v) and np.ndim(v) >= 1 and np.shape(v)[0] == batch:
            arr = np.isfinite(np.asarray(v)).reshape(batch, -1)
            return tuple(int(i) for i in np.flatnonzero(~arr.all(axis=1)))
    return None


def _examples_alone(fun, x, y, limit: int):
    one = jax.jit(fun)
    bad = []
    for i in range(min(len(x), limit)):
        if not all(map(finite, jax.tree_util.tree_leaves(one(x[i : i + 1], y[i : i + 1])))):
            bad.append(i)
    return tuple(bad)


def find_nonfinite(
    model,
    params,
    batch,
    *,
    model_state=None,
    loss_fn=None,
    task: str = "classification",
    max_examples: int = 256,
) -> NonfiniteReport:
    """The first layer output or parameter gradient that is NaN or infinite, and who caused it.

    Chapter 14: exploding values end in NaN, and "the first NaN" is the place to look: a log or
    a division at zero, an exponential that overflowed, a gradient through a square root at 0.
    The loss ``loss_fn(model.apply(params, x), y)`` (its mean, if not a scalar) is traced with
    ``jax.make_jaxpr`` and evaluated one equation at a time; the first equation whose inputs are
    finite and whose output is not is reported with the layer before it. If the forward pass
    is finite, the same is done for the gradient's jaxpr, and the first parameter leaf with a
    non-finite gradient is named. The examples are the batch rows that are non-finite at that
    op, or else those whose loss (gradient) is non-finite on their own.

    Args:
      model: a :class:`jaxnn.models.Model`.
      params: its parameters.
      batch: ``(x, y)``.
      model_state: the model state (default: ``model.init``'s).
      loss_fn: ``(outputs, y) -> loss`` (per example or a scalar); default the training loss of
        ``task``.
      task: see :data:`jaxnn.train.step.TASKS`.
      max_examples: examples tried one by one when the op's output has no batch axis.

    Returns:
      A :class:`NonfiniteReport`.
    """
    x, y = jnp.asarray(batch[0]), jnp.asarray(batch[1])
    state = default_state(model, model_state)
    model = unrolled(model)
    loss_fn = default_loss(task) if loss_fn is None else loss_fn

    def loss(p, xb, yb):
        return jnp.mean(loss_fn(model.apply(p, xb, state=state, train=False)[0], yb))

    value, grads = jax.jit(jax.value_and_grad(loss))(params, x, y)
    if not finite(value):
        return _nonfinite_forward(loss, params, x, y, max_examples)
    return _nonfinite_gradient(loss, grads, params, x, y, max_examples)


def _nonfinite_forward(loss, params, x, y, max_examples) -> NonfiniteReport:
    found = evaluate(_FirstNonfinite(), loss, params, x, y)
    c = found.culprit or {"op": None, "layer": None, "value": []}
    rows = _rows_with_nonfinite(c["value"], len(x))
    if rows is None:
        rows = _examples_alone(lambda xb, yb: loss(params, xb, yb), x, y, max_examples)
    why = f"the forward pass first goes non-finite at {c['op']} after {c['layer']}"
    why += f" (examples {list(rows[:10])})"
    return NonfiniteReport("nonfinite", why, "forward", c["op"], c["layer"], None, rows)


def _nonfinite_gradient(loss, grads, params, x, y, max_examples) -> NonfiniteReport:
    grad = jax.grad(loss)
    leaves = jax.tree_util.tree_flatten_with_path(grads)[0]
    bad = [jax.tree_util.keystr(path) for path, g in leaves if not finite(g)]
    if not bad:
        return NonfiniteReport("finite", "the loss and every parameter gradient are finite")
    c = evaluate(_FirstNonfinite(), grad, params, x, y).culprit or {"op": None, "layer": None}
    rows = _examples_alone(lambda xb, yb: grad(params, xb, yb), x, y, max_examples)
    why = f"the loss is finite but the gradient of {bad[0]} is not (first at {c['op']} in the "
    why += f"backward pass; examples {list(rows[:10])})"
    return NonfiniteReport("nonfinite", why, "backward", c["op"], c["layer"], bad[0], rows)
