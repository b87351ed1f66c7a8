"""Weight initializers — Chapter 10: starting a multilayer perceptron at a trainable scale.

An initializer is a pure function ``(key, shape, dtype=jnp.float32) -> array``. One family,
:func:`variance_scaling`, holds all the named ones (Glorot, He, LeCun, uniform or truncated
normal); each is a ``functools.partial`` that fixes its scale, fan and distribution. :func:`zeros`
is the bias initializer.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp

from jaxnn._checks import check_floating_dtype
from jaxnn._partials import named_partial

__all__ = [
    "compute_fans",
    "variance_scaling",
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


_MODES = ("fan_in", "fan_out", "fan_avg")
_DISTRIBUTIONS = ("uniform", "truncated_normal")
_NAMES: dict[tuple, str] = {}  # (scale, mode, distribution) -> name of the partial below


def variance_scaling(
    key: jax.Array, shape, dtype=jnp.float32, *, scale: float, mode: str, distribution: str
) -> jax.Array:
    r"""Draw a kernel whose entries have variance ``scale / fan``.

    Chapter 10 (and Chapter 14, vanishing and exploding gradients): a unit sums ``fan_in``
    products :math:`w_i x_i`. With independent zero-mean weights,

    .. math::

        \operatorname{Var}(y) = \mathrm{fan_{in}} \, \operatorname{Var}(w) \,
        \mathbb{E}[x^2],

    so :math:`\operatorname{Var}(w) = 1 / \mathrm{fan_{in}}` keeps the signal's scale from layer
    to layer (LeCun), and the backward pass asks for :math:`1 / \mathrm{fan_{out}}` likewise.
    The named initializers are this function with three arguments fixed:

    ========================  =====  ===========  =============================
    initializer               scale  mode         ``Var(w)``
    ========================  =====  ===========  =============================
    ``glorot_uniform/normal`` 1      ``fan_avg``  ``2 / (fan_in + fan_out)``
    ``he_uniform/normal``     2      ``fan_in``   ``2 / fan_in``
    ``lecun_uniform/normal``  1      ``fan_in``   ``1 / fan_in``
    ========================  =====  ===========  =============================

    Glorot (Xavier) balances the forward and backward passes of tanh or sigmoid networks; He
    (Kaiming) doubles the variance because ReLU zeroes half its inputs,
    :math:`\mathbb{E}[\mathrm{relu}(z)^2] = \operatorname{Var}(z) / 2`; LeCun suits linear and
    SELU units. The fans are read from the shape by :func:`compute_fans` (for a convolution they
    include the receptive field). ``"uniform"`` draws :math:`U(-a, a)` with
    :math:`a = \sqrt{3 \operatorname{Var}(w)}`; ``"truncated_normal"`` draws a normal cut at two
    standard deviations and rescaled so that its variance is exactly the target, the same
    distribution as :func:`jax.nn.initializers.variance_scaling`. A fan of 0 counts as 1.

    Args:
      key: PRNG key.
      shape: kernel shape ``(in, out)`` or HWIO ``(*window, in, out)``.
      dtype: floating dtype of the result.
      scale: numerator of the variance.
      mode: ``"fan_in"``, ``"fan_out"`` or ``"fan_avg"`` (the mean of the two).
      distribution: ``"uniform"`` or ``"truncated_normal"``.

    Returns:
      An array of ``shape`` and ``dtype``.

    Raises:
      ValueError: a shape of rank < 2 or with a non-integer or negative entry, a non-floating
        ``dtype``, or an unknown ``mode`` or ``distribution``.

    References:
      Glorot and Bengio, 2010, *Understanding the difficulty of training deep feedforward neural
      networks*; He et al., 2015, *Delving deep into rectifiers*; LeCun et al., 1998,
      *Efficient BackProp*.

    Example:
      >>> import jax
      >>> from jaxnn import initializers
      >>> initializers.he_normal(jax.random.key(0), (784, 256)).shape
      (784, 256)
    """
    name = _NAMES.get((scale, mode, distribution), "variance_scaling")
    if mode not in _MODES:
        raise ValueError(f"{name}: expected mode in {_MODES}, got {mode!r}")
    if distribution not in _DISTRIBUTIONS:
        raise ValueError(f"{name}: expected distribution in {_DISTRIBUTIONS}, got {distribution!r}")
    dims = _check_shape(name, shape, 2)
    check_floating_dtype(name, jnp.zeros((), dtype), "dtype")
    fan_in, fan_out = compute_fans(dims)
    fan = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[mode]
    variance = scale / max(1.0, fan)
    if distribution == "uniform":
        limit = math.sqrt(3.0 * variance)  # U(-a, a) has variance a^2 / 3
        return jax.random.uniform(key, dims, dtype, minval=-limit, maxval=limit)
    std = math.sqrt(variance) / _TRUNCATED_NORMAL_STD
    return std * jax.random.truncated_normal(key, -2.0, 2.0, dims, dtype)


def _initializer(name: str, **fixed) -> functools.partial:
    """``functools.partial(variance_scaling, **fixed)`` that calls itself ``name``."""
    args = ", ".join(f"{k}={v!r}" for k, v in fixed.items())
    doc = f"``variance_scaling(key, shape, dtype, {args})``: see :func:`variance_scaling`."
    _NAMES[tuple(fixed.values())] = name  # errors then name the initializer that was called
    return named_partial(variance_scaling, name, doc, **fixed)


glorot_uniform = _initializer("glorot_uniform", scale=1.0, mode="fan_avg", distribution="uniform")
glorot_normal = _initializer(
    "glorot_normal", scale=1.0, mode="fan_avg", distribution="truncated_normal"
)
he_uniform = _initializer("he_uniform", scale=2.0, mode="fan_in", distribution="uniform")
he_normal = _initializer("he_normal", scale=2.0, mode="fan_in", distribution="truncated_normal")
lecun_uniform = _initializer("lecun_uniform", scale=1.0, mode="fan_in", distribution="uniform")
lecun_normal = _initializer(
    "lecun_normal", scale=1.0, mode="fan_in", distribution="truncated_normal"
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
