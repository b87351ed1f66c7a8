"""Dense (fully connected) layer — Chapter 2: an affine map ``y = x W + b``.

A layer is a pair of pure functions: ``init_dense`` builds the parameters as a plain dict, and
``dense`` applies them. Batch axes come first and any number of them is allowed.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxnn import initializers
from jaxnn._checks import (
    as_array,
    check_bool,
    check_key,
    check_min_rank,
    check_positive_int,
    param_array,
)

__all__ = ["init_dense", "dense"]


def init_dense(
    key: jax.Array,
    in_dim: int,
    out_dim: int,
    *,
    w_init=initializers.glorot_uniform,
    bias: bool = True,
    dtype=jnp.float32,
) -> dict:
    """Create dense-layer parameters.

    Chapter 2: the weight matrix ``W`` (in_dim, out_dim) connects one layer to the next and the bias
    ``b`` (out_dim,) is the trainable offset added before the activation.

    Args:
      key: PRNG key for the weights.
      in_dim: number of input features (positive int).
      out_dim: number of output features (positive int).
      w_init: initializer ``(key, shape, dtype) -> array``; Glorot uniform by default.
      bias: with ``False``, no bias: ``{"w"}`` only (nanoGPT's ``bias=False``).
      dtype: parameter dtype.

    Returns:
      ``{"w": (in_dim, out_dim), "b": (out_dim,)}`` with zero bias (``{"w"}`` without one).

    Raises:
      ValueError: if ``key`` is not a PRNG key or a size is not a positive integer.
    """
    check_key("init_dense", key)
    check_positive_int("init_dense", in_dim, "in_dim")
    check_positive_int("init_dense", out_dim, "out_dim")
    check_bool("init_dense", bias, "bias")
    w = w_init(key, (in_dim, out_dim), dtype)  # (in, out)
    return {"w": w, "b": jnp.zeros((out_dim,), dtype)} if bias else {"w": w}  # b: (out,)


def dense(params: dict, x: jax.Array) -> jax.Array:
    """Apply a dense layer: ``y = x @ W + b``.

    Chapter 2: each output unit is a weighted sum of every input plus a bias.

    Args:
      params: ``{"w": (in, out), "b": (out,)}`` (or ``{"w"}``, no bias) from
        :func:`init_dense`.
      x: inputs ``(..., in)``.

    Returns:
      ``(..., out)``.

    Raises:
      ValueError: if ``x`` is a scalar, the last axis of ``x`` does not match ``w``, or the params
        are malformed.
    """
    w, b = _weights(params)
    x = as_array("dense", x)
    check_min_rank("dense", x, 1)
    if x.shape[-1] != w.shape[0]:
        raise ValueError(
            f"dense: expected input with last axis {w.shape[0]} (w is {w.shape}), "
            f"got shape {x.shape}"
        )
    return x @ w if b is None else x @ w + b


def _weights(params) -> tuple[jax.Array, jax.Array | None]:
    """``(w, b)`` of dense params, checked (``b`` is None for a layer without bias)."""
    if not isinstance(params, dict) or "w" not in params:
        got = sorted(params) if isinstance(params, dict) else type(params).__name__
        raise ValueError(f"dense: expected params with keys ['b', 'w'] (or ['w']), got {got}")
    w = param_array("dense", params, "w")
    b = param_array("dense", params, "b") if "b" in params else None
    if w.ndim != 2 or (b is not None and b.shape != (w.shape[1],)):
        raise ValueError(
            f"dense: expected w of shape (in, out) and b of shape (out,), "
            f"got w {w.shape}, b {None if b is None else b.shape}"
        )
    return w, b
