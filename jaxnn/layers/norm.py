"""Normalization layers — Chapter 11: normalization inside convolutional networks.

Both layers rescale activations to zero mean and unit variance, then apply a learned per-feature
scale ``gamma`` and shift ``beta``:

* layer norm computes the statistics of each example over its feature axis (no state, identical
  in training and evaluation);
* batch norm computes the statistics of each feature over the batch (and over the spatial
  positions of a convolutional feature map) during training, and keeps exponential running
  averages of them for evaluation, where one example's output no longer depends on the others.

Batch norm is the project's one stateful layer: the running statistics live in a separate
``state`` dict (never in the trained params), and :func:`batch_norm` returns ``(y, new_state)``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxnn._checks import (
    as_array,
    check_bool,
    check_floating_dtype,
    check_min_rank,
    check_positive_int,
    param_array,
)
from jaxnn._compat import renamed_arguments

__all__ = [
    "init_layer_norm",
    "layer_norm",
    "init_batch_norm",
    "init_batch_norm_state",
    "batch_norm",
]


def _check_params(name: str, tree, keys: tuple[str, ...], what: str) -> int:
    """Check that ``tree`` is a dict of equal-length vectors under ``keys``; return the length."""
    if not isinstance(tree, dict) or any(k not in tree for k in keys):
        got = sorted(tree) if isinstance(tree, dict) else type(tree).__name__
        raise ValueError(f"{name}: expected {what} with keys {sorted(keys)}, got {got}")
    shapes = {k: tuple(param_array(name, tree, k).shape) for k in keys}
    dim = shapes[keys[0]]
    if len(dim) != 1 or any(s != dim for s in shapes.values()):
        raise ValueError(f"{name}: expected {what} {sorted(keys)} of one shape (F,), got {shapes}")
    return dim[0]


# The smallest normal float32: a smaller eps is flushed to zero on CPU, and rsqrt(0 + 0) = inf.
_MIN_EPS = float(np.finfo(np.float32).tiny)


def _check_eps(name: str, eps) -> None:
    if not isinstance(eps, (int, float, np.floating)) or not eps >= _MIN_EPS:
        raise ValueError(
            f"{name}: expected eps > 0, at least {_MIN_EPS:.3g} (float32's tiny), got {eps!r}"
        )


def init_layer_norm(dim: int, *, bias: bool = True, dtype=jnp.float32) -> dict:
    """Create layer-norm parameters.

    Chapter 11: the learned per-feature scale ``gamma`` (ones) and shift ``beta`` (zeros) let the
    layer undo the normalization where that helps, so the identity map stays reachable. Keyless:
    the parameters start as constants, so no random key is taken.

    Args:
      dim: size of the normalized (last) axis.
      bias: with ``False``, no shift: ``{"scale"}`` only (nanoGPT's ``bias=False``).
      dtype: parameter dtype.

    Returns:
      ``{"scale": (dim,) ones, "bias": (dim,) zeros}`` (``{"scale"}`` without a shift).
    """
    dim = check_positive_int("init_layer_norm", dim, "dim")
    check_bool("init_layer_norm", bias, "bias")
    scale = jnp.ones((dim,), dtype)  # (F,)
    return {"scale": scale, "bias": jnp.zeros((dim,), dtype)} if bias else {"scale": scale}


def layer_norm(params: dict, x: jax.Array, *, eps: float = 1e-5) -> jax.Array:
    """Normalize each example over its last axis, then scale and shift.

    Chapter 11::

        mu = mean_f x[..., f]      var = mean_f (x[..., f] - mu)^2
        y[..., f] = gamma[f] * (x[..., f] - mu) / sqrt(var + eps) + beta[f]

    The statistics belong to one example, so the output never depends on the rest of the batch.

    Args:
      params: ``{"scale": (F,), "bias": (F,)}`` (or ``{"scale"}``, no shift) from
        :func:`init_layer_norm`.
      x: ``(..., F)``.
      eps: constant added to the variance, at least float32's tiny (1.2e-38).

    Returns:
      ``(..., F)``.

    Raises:
      ValueError: malformed params, a scalar input, a last axis other than ``F``, or
        ``eps`` below float32's tiny (``eps <= 0`` included).
    """
    keys = ("scale", "bias") if isinstance(params, dict) and "bias" in params else ("scale",)
    dim = _check_params("layer_norm", params, keys, "params")
    x = as_array("layer_norm", x)
    check_min_rank("layer_norm", x, 1)
    check_floating_dtype("layer_norm", x)
    _check_eps("layer_norm", eps)
    if x.shape[-1] != dim:
        raise ValueError(f"layer_norm: expected input with last axis {dim}, got shape {x.shape}")
    mean = jnp.mean(x, axis=-1, keepdims=True)  # (..., 1)
    var = jnp.mean(jnp.square(x - mean), axis=-1, keepdims=True)  # (..., 1)
    y = (x - mean) * lax.rsqrt(var + eps) * param_array("layer_norm", params, "scale")
    return y + param_array("layer_norm", params, "bias") if "bias" in params else y


@renamed_arguments(num_features="dim")
def init_batch_norm(dim: int, *, dtype=jnp.float32) -> dict:
    """Create batch-norm parameters (the trained part).

    Chapter 11: a learned per-channel scale ``gamma`` and shift ``beta``. Keyless: they start
    as ones and zeros, so no random key is taken.

    Args:
      dim: number of features (channels), the size of the last input axis.
      dtype: parameter dtype.

    Returns:
      ``{"scale": (F,) ones, "bias": (F,) zeros}``.
    """
    dim = check_positive_int("init_batch_norm", dim, "dim")
    return {
        "scale": jnp.ones((dim,), dtype),  # (F,)
        "bias": jnp.zeros((dim,), dtype),  # (F,)
    }


@renamed_arguments(num_features="dim")
def init_batch_norm_state(dim: int, *, dtype=jnp.float32) -> dict:
    """Create batch-norm running statistics (the non-trained state).

    Chapter 11: evaluation uses running averages of the training batches' mean and variance.
    Keyless: the statistics start as zeros and ones.

    Args:
      dim: number of features (channels).
      dtype: state dtype.

    Returns:
      ``{"mean": (F,) zeros, "var": (F,) ones}``.
    """
    dim = check_positive_int("init_batch_norm_state", dim, "dim")
    return {
        "mean": jnp.zeros((dim,), dtype),  # (F,)
        "var": jnp.ones((dim,), dtype),  # (F,)
    }


def _check_batch_norm_args(params, state, x, train, momentum, eps) -> jax.Array:
    """Raise a ``ValueError`` naming the first bad argument of :func:`batch_norm`; return ``x``
    as an array."""
    dim = _check_params("batch_norm", params, ("scale", "bias"), "params")
    state_dim = _check_params("batch_norm", state, ("mean", "var"), "state")
    if state_dim != dim:
        raise ValueError(f"batch_norm: expected state of size {dim} like params, got {state_dim}")
    x = as_array("batch_norm", x)
    check_min_rank("batch_norm", x, 2)
    check_floating_dtype("batch_norm", x)
    _check_eps("batch_norm", eps)
    if not isinstance(momentum, (int, float, np.floating)) or not 0.0 <= momentum < 1.0:
        raise ValueError(f"batch_norm: expected momentum in [0, 1), got {momentum!r}")
    if x.shape[-1] != dim:
        raise ValueError(
            f"batch_norm: expected input with {dim} features on the last axis, got shape {x.shape}"
        )
    if not isinstance(train, (bool, np.bool_)):
        raise ValueError(
            f"batch_norm: expected train to be a Python bool (static under jit), got {train!r}"
        )
    if train and 0 in x.shape[:-1]:
        raise ValueError(
            f"batch_norm: expected at least one value per feature for batch statistics in "
            f"training, got shape {x.shape}"
        )
    return x


def _batch_statistics(x, axis_name) -> tuple[jax.Array, jax.Array]:
    """Per-feature mean and (biased) variance over every axis but the last, averaged over the
    devices of ``axis_name`` when it is given (``lax.pmean``)."""
    axes = tuple(range(x.ndim - 1))
    mean = jnp.mean(x, axis=axes)  # (F,)
    if axis_name is not None:
        mean = lax.pmean(mean, axis_name)
    var = jnp.mean(jnp.square(x - mean), axis=axes)  # (F,)
    if axis_name is not None:
        var = lax.pmean(var, axis_name)
    return mean, var


def batch_norm(
    params: dict,
    x: jax.Array,
    *,
    state: dict,
    train: bool,
    momentum: float = 0.9,
    eps: float = 1e-5,
    axis_name: str | None = None,
) -> tuple[jax.Array, dict]:
    """Batch normalization over every axis but the last.

    Chapter 11: in training, each feature ``f`` is normalized with the statistics of the current
    batch (over the batch and any spatial axes), and the running statistics move towards them::

        mu[f] = mean_{n, ...} x[n, ..., f]      s2[f] = mean_{n, ...} (x[n, ..., f] - mu[f])^2
        y = gamma * (x - mu) / sqrt(s2 + eps) + beta
        mean' = momentum * mean + (1 - momentum) * mu
        var'  = momentum * var  + (1 - momentum) * s2

    (``s2`` is the biased batch variance, as in Flax). In evaluation the running ``mean`` and
    ``var`` replace ``mu`` and ``s2``, the state is returned unchanged, and each example's output
    depends on that example alone.

    Args:
      params: ``{"scale": (F,), "bias": (F,)}`` from :func:`init_batch_norm`.
      state: ``{"mean": (F,), "var": (F,)}`` from :func:`init_batch_norm_state`.
      x: ``(N, ..., F)``, e.g. ``(N, F)``, ``(N, L, F)`` or ``(N, H, W, F)``.
      train: use batch statistics and update the running ones (``True``), or use the running ones.
      momentum: weight of the old running statistics, in ``[0, 1)``.
      eps: constant added to the variance, at least float32's tiny (1.2e-38).
      axis_name: in training, average the batch statistics over this mapped axis (``pmap``,
        ``shard_map`` or ``vmap``) so every device normalizes with the statistics of the global
        batch (exact when each device holds the same number of examples).

    Returns:
      ``(y, new_state)``: ``y`` has the shape of ``x``; the running statistics in ``new_state``
      carry no gradient.

    Raises:
      ValueError: malformed params or state, rank < 2, a last axis other than ``F``,
        ``momentum``/``eps`` out of range, a ``train`` that is not a Python bool, or an empty
        batch in training.
    """
    x = _check_batch_norm_args(params, state, x, train, momentum, eps)
    running_mean, running_var = (param_array("batch_norm", state, k) for k in ("mean", "var"))
    if train:
        mean, var = _batch_statistics(x, axis_name)  # (F,), (F,)
        new_state = {
            "mean": momentum * running_mean + (1.0 - momentum) * lax.stop_gradient(mean),
            "var": momentum * running_var + (1.0 - momentum) * lax.stop_gradient(var),
        }
    else:
        mean, var, new_state = running_mean, running_var, state
    scale, bias = (param_array("batch_norm", params, k) for k in ("scale", "bias"))
    y = (x - mean) * lax.rsqrt(var + eps) * scale + bias
    return y, new_state
