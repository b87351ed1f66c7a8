"""Vanishing and exploding gradients, from per-layer gradient norms (Chapter 14).

:func:`layer_grad_norms` is pure ``jax.numpy`` and composes with ``jit``; :func:`gradient_health`
reads the norms and returns a :class:`GradientReport`.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np

from jaxnn.diagnostics.report import Report

__all__ = ["GradientReport", "layer_grad_norms", "gradient_health"]


def _natural_key(text: str):
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


def layer_grad_norms(grads) -> dict[str, jax.Array]:
    """Euclidean norm of the gradient of each layer, keyed by the layer's path.

    Chapter 14: vanishing or exploding gradients show as layer norms that shrink or grow by
    orders of magnitude from the output layer back to the input layer.

    A layer is a leaf's path without its last key (``['dense_0']['w']`` and ``['dense_0']['b']``
    form layer ``['dense_0']``); its norm is ``sqrt(sum_leaves sum_i g_i^2)``. Layers are listed
    in natural order of their paths (``dense_2`` before ``dense_10``), which is input to output
    for the jaxnn models.

    Args:
      grads: a gradient pytree (the params' structure), at least one leaf.

    Returns:
      ``{path: norm}``, each norm a float scalar array (under ``jit`` the returned dict comes
      back with its keys in plain sorted order, as JAX flattens dicts).

    Raises:
      ValueError: if ``grads`` has no leaves.
    """
    leaves = jax.tree_util.tree_flatten_with_path(grads)[0]
    if not leaves:
        raise ValueError("layer_grad_norms: expected a gradient pytree with leaves, got none")
    squares: dict[str, jax.Array] = {}
    for path, leaf in leaves:
        layer = jax.tree_util.keystr(path[:-1] if len(path) > 1 else path)
        sq = jnp.sum(jnp.square(jnp.asarray(leaf, dtype=jnp.result_type(float))))
        squares[layer] = squares[layer] + sq if layer in squares else sq
    return {k: jnp.sqrt(squares[k]) for k in sorted(squares, key=_natural_key)}


def _is_scalar(v) -> bool:
    return isinstance(v, (int, float, np.number)) or (hasattr(v, "shape") and v.shape == ())


def _are_norms(grads) -> bool:
    """Whether ``grads`` is ``{layer: norm}`` already (not a gradient pytree)."""
    return isinstance(grads, Mapping) and bool(grads) and all(map(_is_scalar, grads.values()))


def _is_norm_sequence(grads) -> bool:
    return isinstance(grads, (list, tuple, np.ndarray)) and all(map(_is_scalar, grads))


def _read_norms(grads) -> dict[str, float]:
    if _are_norms(grads):
        names = sorted(grads, key=lambda k: _natural_key(str(k)))  # jit returns dicts sorted
        return {str(k): float(grads[k]) for k in names}
    if _is_norm_sequence(grads):
        return {str(i): float(v) for i, v in enumerate(grads)}  # norms, input to output
    return {k: float(v) for k, v in layer_grad_norms(grads).items()}


def _norms_from(name: str, grads) -> dict[str, float]:
    norms = _read_norms(grads)
    if len(norms) < 1:
        raise ValueError(f"{name}: expected at least one layer norm, got none")
    if any(not (v >= 0) and not math.isnan(v) for v in norms.values()):
        raise ValueError(f"{name}: expected non-negative norms, got {norms}")
    return norms


@dataclasses.dataclass(frozen=True)
class GradientReport(Report):
    """What :func:`gradient_health` found (verdict ``healthy``, ``vanishing`` or ``exploding``).

    Both rules can fire at once; the verdict is then ``exploding``.

    Attributes:
      vanishing: whether the vanishing rule fired.
      exploding: whether the exploding rule fired.
      ratio: ``n_1 / n_L``, the first-to-last layer norm ratio.
      min_norm, max_norm: the smallest and largest layer norm.
      norms: ``{layer: n_l}``, input to output.
    """

    vanishing: bool
    exploding: bool
    ratio: float
    min_norm: float
    max_norm: float
    norms: dict

    PROBLEMS = ("vanishing", "exploding")


def gradient_health(
    grads,
    *,
    vanishing_ratio: float = 1e-3,
    min_norm: float = 1e-8,
    max_norm: float = 1e3,
    max_growth: float = 1e3,
) -> GradientReport:
    """Flag vanishing or exploding gradients from per-layer gradient norms.

    Chapter 14: "Vanishing or exploding gradients make deep or recurrent models train slowly or
    unstably." With ``n_1 .. n_L`` the layer norms from input to output and
    ``r = n_1 / n_L`` (how much the gradient changed on its way back through the network):

    - vanishing: ``r < vanishing_ratio`` or some ``n_l < min_norm``;
    - exploding: some ``n_l > max_norm`` or not finite, or ``r > max_growth``.

    Args:
      grads: a gradient pytree (norms from :func:`layer_grad_norms`), or the per-layer norms
        themselves: ``{layer: norm}`` (layers in natural order of their names, ``dense_2``
        before ``dense_10``) or a sequence of numbers, input to output.
      vanishing_ratio: first-to-last norm ratio below which gradients vanish.
      min_norm: absolute norm below which a layer's gradient has vanished.
      max_norm: absolute norm above which a layer's gradient has exploded.
      max_growth: first-to-last norm ratio above which gradients explode.

    Returns:
      A :class:`GradientReport`.

    Raises:
      ValueError: if there are no layers or a norm is negative.
    """
    norms = _norms_from("gradient_health", grads)
    values = np.asarray(list(norms.values()), dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = float(values[0] / values[-1]) if values[-1] > 0 else math.inf
    finite = bool(np.isfinite(values).all())
    vanishing = finite and (ratio < vanishing_ratio or bool((values < min_norm).any()))
    exploding = (not finite) or bool((values > max_norm).any()) or ratio > max_growth
    verdict = "exploding" if exploding else "vanishing" if vanishing else "healthy"
    low, high = float(values.min()), float(values.max())
    message = f"first/last layer gradient norm {ratio:.2g}, norms in "
    message += f"[{low:.2g}, {high:.2g}] over {len(norms)} layers"
    return GradientReport(
        verdict, message, bool(vanishing), bool(exploding), ratio, low, high, norms
    )
