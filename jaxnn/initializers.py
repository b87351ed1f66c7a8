"""Weight initializers — Chapter 10: starting a multilayer perceptron at a trainable scale.

An initializer is a pure function ``(key, shape, dtype=jnp.float32) -> array``. The variance-scaling
ones draw weights with variance ``scale / fan``, where the fans are read from the shape:

* dense kernels ``(in, out)``: ``fan_in = in``, ``fan_out = out``;
* convolution kernels HWIO ``(*window, in, out)``: ``fan_in = prod(window) * in`` and
  ``fan_out = prod(window) * out`` (each output sums over the whole receptive field).

Glorot keeps the variance of activations and of gradients both near one for tanh-like units
(``Var = 2 / (fan_in + fan_out)``), He compensates for ReLU zeroing half its inputs
(``Var = 2 / fan_in``), and LeCun keeps ``Var = 1 / fan_in`` (SELU, linear units). The normal
variants draw from a normal truncated at two standard deviations and rescaled so that the variance
is exactly the target, the same distribution as :mod:`jax.nn.initializers`.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from jaxnn._checks import check_floating_dtype

__all__ = [
    "compute_fans",
    "glorot_uniform",
    "glorot_normal",
    "he_uniform",
    "he_normal",
    "lecun_uniform",
    "lecun_normal",
    "zeros",
]

# Standard deviation of a unit normal truncated to [-2, 2]; dividing by it restores unit variance.
_TRUNCATED_NORMAL_STD = 0.87962566103423978


def _check_shape(name: str, shape, min_rank: int) -> tuple[int, ...]:
    try:
        dims = tuple(shape)
    except TypeError:
        raise ValueError(f"{name}: expected shape as a tuple of ints, got {shape!r}") from None
    bad = [d for d in dims if isinstance(d, bool) or not isinstance(d, int) or d < 0]
    if bad:
        raise ValueError(f"{name}: expected shape of non-negative ints, got {shape!r}")
    if len(dims) < min_rank:
        raise ValueError(
            f"{name}: expected a shape of rank >= {min_rank} ((in, out) or HWIO), got {shape!r}"
        )
    return dims


def compute_fans(shape) -> tuple[int, int]:
    """Return ``(fan_in, fan_out)`` for a dense ``(in, out)`` or HWIO convolution kernel shape.

    Chapter 10: a unit's fan-in is the number of inputs it sums over. For a kernel of shape
    ``(*window, in, out)`` the receptive field is ``r = prod(window)`` (1 for dense), and
    ``fan_in = r * in``, ``fan_out = r * out``.

    Args:
      shape: kernel shape of rank >= 2.

    Returns:
      ``(fan_in, fan_out)`` as Python ints.

    Raises:
      ValueError: if ``shape`` has rank < 2 or non-integer entries.
    """
    dims = _check_shape("compute_fans", shape, 2)
    receptive_field = math.prod(dims[:-2])
    return receptive_field * dims[-2], receptive_field * dims[-1]


def _variance_scaling(name, key, shape, dtype, *, scale, mode, distribution):
    dims = _check_shape(name, shape, 2)
    check_floating_dtype(name, jnp.zeros((), dtype), "dtype")
    fan_in, fan_out = compute_fans(dims)
    fan = {"fan_in": fan_in, "fan_avg": (fan_in + fan_out) / 2}[mode]
    variance = scale / max(1.0, fan)
    if distribution == "uniform":
        # U(-a, a) has variance a^2 / 3.
        limit = math.sqrt(3.0 * variance)
        return jax.random.uniform(key, dims, dtype, minval=-limit, maxval=limit)
    std = math.sqrt(variance) / _TRUNCATED_NORMAL_STD
    return std * jax.random.truncated_normal(key, -2.0, 2.0, dims, dtype)


def glorot_uniform(key: jax.Array, shape, dtype=jnp.float32) -> jax.Array:
    """Glorot (Xavier) uniform: ``W ~ U(-a, a)`` with ``a = sqrt(6 / (fan_in + fan_out))``.

    Chapter 10: ``Var(W) = 2 / (fan_in + fan_out)`` balances the forward activations and the
    backward gradients of a tanh or sigmoid network.

    Args:
      key: PRNG key.
      shape: kernel shape ``(in, out)`` or HWIO.
      dtype: floating dtype of the result.

    Returns:
      An array of ``shape`` and ``dtype``.
    """
    return _variance_scaling(
        "glorot_uniform", key, shape, dtype, scale=1.0, mode="fan_avg", distribution="uniform"
    )


def glorot_normal(key: jax.Array, shape, dtype=jnp.float32) -> jax.Array:
    """Glorot (Xavier) normal: truncated normal with ``Var(W) = 2 / (fan_in + fan_out)``.

    Chapter 10: the normal twin of :func:`glorot_uniform`, truncated at two standard deviations
    and rescaled so that the variance is exact.

    Args:
      key: PRNG key.
      shape: kernel shape ``(in, out)`` or HWIO.
      dtype: floating dtype of the result.

    Returns:
      An array of ``shape`` and ``dtype``.
    """
    return _variance_scaling(
        "glorot_normal", key, shape, dtype, scale=1.0, mode="fan_avg", distribution="normal"
    )


def he_uniform(key: jax.Array, shape, dtype=jnp.float32) -> jax.Array:
    """He (Kaiming) uniform: ``W ~ U(-a, a)`` with ``a = sqrt(6 / fan_in)``.

    Chapter 10: ReLU zeroes half its inputs, so ``Var(W) = 2 / fan_in`` keeps the second moment of
    the activations constant from layer to layer.

    Args:
      key: PRNG key.
      shape: kernel shape ``(in, out)`` or HWIO.
      dtype: floating dtype of the result.

    Returns:
      An array of ``shape`` and ``dtype``.
    """
    return _variance_scaling(
        "he_uniform", key, shape, dtype, scale=2.0, mode="fan_in", distribution="uniform"
    )


def he_normal(key: jax.Array, shape, dtype=jnp.float32) -> jax.Array:
    """He (Kaiming) normal: truncated normal with ``Var(W) = 2 / fan_in``.

    Chapter 10: the normal twin of :func:`he_uniform` for ReLU networks.

    Args:
      key: PRNG key.
      shape: kernel shape ``(in, out)`` or HWIO.
      dtype: floating dtype of the result.

    Returns:
      An array of ``shape`` and ``dtype``.
    """
    return _variance_scaling(
        "he_normal", key, shape, dtype, scale=2.0, mode="fan_in", distribution="normal"
    )


def lecun_uniform(key: jax.Array, shape, dtype=jnp.float32) -> jax.Array:
    """LeCun uniform: ``W ~ U(-a, a)`` with ``a = sqrt(3 / fan_in)``.

    Chapter 10: ``Var(W) = 1 / fan_in`` keeps the variance of a linear unit's output equal to the
    variance of its inputs.

    Args:
      key: PRNG key.
      shape: kernel shape ``(in, out)`` or HWIO.
      dtype: floating dtype of the result.

    Returns:
      An array of ``shape`` and ``dtype``.
    """
    return _variance_scaling(
        "lecun_uniform", key, shape, dtype, scale=1.0, mode="fan_in", distribution="uniform"
    )


def lecun_normal(key: jax.Array, shape, dtype=jnp.float32) -> jax.Array:
    """LeCun normal: truncated normal with ``Var(W) = 1 / fan_in``.

    Chapter 10: the normal twin of :func:`lecun_uniform`.

    Args:
      key: PRNG key.
      shape: kernel shape ``(in, out)`` or HWIO.
      dtype: floating dtype of the result.

    Returns:
      An array of ``shape`` and ``dtype``.
    """
    return _variance_scaling(
        "lecun_normal", key, shape, dtype, scale=1.0, mode="fan_in", distribution="normal"
    )


def zeros(key: jax.Array, shape, dtype=jnp.float32) -> jax.Array:
    """All zeros, the usual start for biases (``key`` is accepted and ignored).

    Chapter 10: a zero bias is harmless, but zero *weights* make every unit of a layer compute the
    same function and receive the same gradient, so the symmetry never breaks.

    Args:
      key: PRNG key (unused; kept so every initializer has one signature).
      shape: any shape.
      dtype: dtype of the result.

    Returns:
      ``jnp.zeros(shape, dtype)``.
    """
    del key
    return jnp.zeros(_check_shape("zeros", shape, 0), dtype)
