"""Dead ReLUs and saturated sigmoid and tanh units, per layer (Chapter 14).

:func:`activation_report` reads the intermediates of ``model.apply`` through the jaxpr
interpreter (:mod:`jaxnn.diagnostics.interpreter`), so no model needs a hook.
"""

from __future__ import annotations

import dataclasses
import math

import jax.numpy as jnp
import numpy as np

from jaxnn.diagnostics._common import default_state, unrolled
from jaxnn.diagnostics.interpreter import Interpreter, evaluate, is_float
from jaxnn.diagnostics.report import Report

__all__ = ["LayerActivation", "ActivationReport", "activation_report"]

_COMPARE = frozenset({"gt", "ge", "lt", "le"})


def _match(x, y) -> str | None:
    """``relu`` or ``sigmoid`` if ``y`` is that function of ``x``, else ``None``."""
    if x.shape != y.shape or x.size == 0:
        return None
    if (x < 0).any() and np.array_equal(y, np.where(x > 0, x, 0.0)):
        return "relu"
    spread = np.abs(x).max() > 0.1
    if spread and np.allclose(y, 1.0 / (1.0 + np.exp(-x)), rtol=1e-5, atol=1e-6):
        return "sigmoid"
    return None


def _activation_kind(eqn, out, candidates) -> str | None:
    """Name the activation ``out`` computes from one of ``candidates``, by its values."""
    name = eqn.primitive.name
    if name in ("logistic", "tanh"):
        return "sigmoid" if name == "logistic" else "tanh"
    y = np.asarray(out, np.float64)
    with np.errstate(over="ignore"):
        for x in candidates:
            kind = _match(np.asarray(x, np.float64), y)
            if kind is not None:
                return kind
    return None


def _float_arrays(values) -> list:
    return [v for v in values if np.ndim(v) > 0 and is_float(v)]


def _candidates(eqn, invals, frame) -> list:
    """The values an activation in ``eqn`` could be of: its float array inputs, and the
    operands of a comparison that feeds it (so ``where(x > 0, x, 0)`` counts)."""
    found = _float_arrays(invals)
    for var in eqn.invars:
        source = frame.producer(var)
        if source is not None and source.primitive.name in _COMPARE:
            found += _float_arrays([frame.read(v) for v in source.invars])
    return found


class _Recorder(Interpreter):
    """Record layer outputs and activations, input to output.

    An *activation* is an equation whose output equals ``relu(x)`` or ``sigmoid(x)`` of one of
    its inputs, or of the operand of the comparison that feeds its predicate, or a ``logistic``
    or ``tanh`` primitive. Calls (``jit``, ``custom_jvp_call``) are entered unless they compute
    an activation as a whole, so ``jax.nn.relu`` is one activation.
    """

    def __init__(self):
        super().__init__()
        self.records: list[dict] = []

    def visit(self, eqn, invals, outvals, origins, frame) -> None:
        kind = None
        if len(outvals) == 1 and is_float(outvals[0]):
            kind = _activation_kind(eqn, outvals[0], _candidates(eqn, invals, frame))
        if kind is not None:
            self._record(kind, f"{kind} after {self.layer}", outvals[0])
        elif not self.enter(eqn, invals, origins) and self.note_layer(eqn, origins):
            self._record("layer", self.layer, outvals[0])

    def _record(self, kind, name, value):
        self.records.append({"kind": kind, "name": name, "layer": self.layer, "value": value})


@dataclasses.dataclass(frozen=True)
class LayerActivation:
    """One recorded intermediate: a layer's output or an activation's output.

    Attributes:
      name: ``['dense_0']`` for a layer, ``relu after ['dense_0']`` for an activation.
      kind: ``layer``, ``relu``, ``sigmoid`` or ``tanh``.
      shape: the output's shape, batch axis first.
      mean: mean of the output over the batch.
      std: standard deviation of the output over the batch.
      dead_fraction: for ``relu``, the share of units (last axis) never positive on the batch.
      saturated_fraction: for ``sigmoid``/``tanh``, the share of outputs within ``eps`` of an
        asymptote (derivative below about ``eps``).
      hist_counts: histogram of the output values (for the doctor's figure).
      hist_edges: the histogram's bin edges.
    """

    name: str
    kind: str
    shape: tuple
    mean: float
    std: float
    dead_fraction: float | None
    saturated_fraction: float | None
    hist_counts: tuple
    hist_edges: tuple


@dataclasses.dataclass(frozen=True)
class ActivationReport(Report):
    """What :func:`activation_report` found (verdict ``healthy``, ``dead_relu``, ``saturated``).

    Attributes:
      layers: a :class:`LayerActivation` per layer output and activation, input to output.
      worst_dead_fraction: the largest ``dead_fraction`` (0 without ReLUs).
      worst_saturated_fraction: the largest ``saturated_fraction`` (0 without sigmoid/tanh).
    """

    layers: tuple
    worst_dead_fraction: float
    worst_saturated_fraction: float

    PROBLEMS = ("dead_relu", "saturated")


def _dead_and_saturated(v: np.ndarray, kind: str, eps: float) -> tuple:
    if kind == "relu":
        units = v.reshape(-1, v.shape[-1]) if v.ndim > 1 else v.reshape(-1, 1)
        return float((units.max(axis=0) <= 0).mean()), None
    if kind == "sigmoid":
        return None, float(((v < eps) | (v > 1 - eps)).mean())
    if kind == "tanh":
        return None, float((np.abs(v) > 1 - eps).mean())
    return None, None


def _layer_stats(record: dict, eps: float) -> LayerActivation:
    v = np.asarray(record["value"], np.float64)
    dead, sat = _dead_and_saturated(v, record["kind"], eps)
    finite = v[np.isfinite(v)]
    counts, edges = np.histogram(finite if finite.size else np.zeros(1), bins=40)
    return LayerActivation(
        name=record["name"],
        kind=record["kind"],
        shape=tuple(v.shape),
        mean=float(finite.mean()) if finite.size else math.nan,
        std=float(finite.std()) if finite.size else math.nan,
        dead_fraction=dead,
        saturated_fraction=sat,
        hist_counts=tuple(int(c) for c in counts),
        hist_edges=tuple(float(e) for e in edges),
    )


def _worst(layers, field: str) -> float:
    return max((getattr(a, field) for a in layers if getattr(a, field) is not None), default=0.0)


def _verdict(layers, dead, sat, max_dead, max_saturated) -> tuple[str, str]:
    if dead > max_dead:
        worst = max((a for a in layers if a.kind == "relu"), key=lambda a: a.dead_fraction)
        return (
            "dead_relu",
            f"{dead:.0%} of the units of {worst.name} are never positive on the batch",
        )
    if sat > max_saturated:
        worst = max(
            (a for a in layers if a.saturated_fraction is not None),
            key=lambda a: a.saturated_fraction,
        )
        return "saturated", f"{sat:.0%} of the outputs of {worst.name} sit on a flat tail"
    kinds = sorted({a.kind for a in layers} - {"layer"}) or ["no relu/sigmoid/tanh"]
    why = f"{len(layers)} intermediates ({', '.join(kinds)}): worst dead {dead:.0%}, "
    return "healthy", why + f"worst saturated {sat:.0%}"


def activation_report(
    model,
    params,
    x,
    *,
    model_state=None,
    max_dead: float = 0.3,
    max_saturated: float = 0.3,
    eps: float = 0.01,
) -> ActivationReport:
    """Per layer: dead ReLUs, saturated sigmoid and tanh units, and the mean and std.

    Chapter 14: vanishing gradients have two common causes inside the network. A ReLU unit whose
    input is negative for every example (``max_b h_{b,j} <= 0``) passes no gradient and never
    recovers ("dead"); a sigmoid or tanh unit driven far from zero sits on its flat tail, where
    ``sigmoid'(z) = s(1 - s)`` and ``tanh'(z) = 1 - t^2`` are near zero ("saturated").

    The intermediates are read without touching the model: ``model.apply`` is traced with
    ``jax.make_jaxpr`` and the jaxpr evaluated one equation at a time (see
    :mod:`jaxnn.diagnostics.interpreter`), so any model built from jax.numpy works, including
    ones whose code does not name its layers. A ``remat`` model is read unrolled (the same
    outputs; its scanned layers would otherwise be one step).

    The verdict is ``dead_relu`` when some ReLU layer has ``dead_fraction > max_dead``,
    ``saturated`` when some sigmoid/tanh layer has ``saturated_fraction > max_saturated``, and
    ``healthy`` otherwise (also when the model has no such activation).

    Args:
      model: a :class:`jaxnn.models.Model`.
      params: its parameters.
      x: a batch of inputs (B, ...); a few hundred examples make the dead-unit test meaningful.
      model_state: the model state (default: ``model.init``'s, e.g. fresh batch-norm statistics).
      max_dead: share of dead units above which a ReLU layer is flagged.
      max_saturated: share of saturated outputs above which a sigmoid/tanh layer is flagged.
      eps: distance from the asymptote (0 or 1 for sigmoid, +-1 for tanh) that counts as
        saturated.

    Returns:
      An :class:`ActivationReport`; ``layers`` lists every layer output and activation, input
      to output.
    """
    state = default_state(model, model_state)
    model = unrolled(model)
    recorder = evaluate(
        _Recorder(),
        lambda p, xb: model.apply(p, xb, state=state, train=False)[0],
        params,
        jnp.asarray(x),
    )
    layers = tuple(_layer_stats(r, eps) for r in recorder.records)
    dead = _worst(layers, "dead_fraction")
    sat = _worst(layers, "saturated_fraction")
    verdict, why = _verdict(layers, dead, sat, max_dead, max_saturated)
    return ActivationReport(verdict, why, layers, dead, sat)
