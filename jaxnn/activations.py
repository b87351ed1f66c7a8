"""Activation functions — Chapter 3: nonlinearity; softmax from Chapter 5.

A stack of affine layers is itself one affine map, so a network needs a nonlinear function between
its layers to represent anything more. Each function here is elementwise (except ``softmax`` and
``log_softmax``, which normalize along one axis), written out for reading and tested equal to its
:mod:`jax.nn` counterpart. The numerically delicate ones are stable for inputs as large as ``1e4``:
``sigmoid`` never exponentiates a positive number, and ``softmax``/``log_softmax`` subtract the
maximum before exponentiating (the log-sum-exp trick).

Conventions at the kinks: ``relu'(0) = 0`` (as :func:`jax.nn.relu`) and ``leaky_relu'(0) = 1`` (as
:func:`jax.nn.leaky_relu`).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxnn._checks import as_array, check_axis, check_floating_dtype, check_nonempty_axis

__all__ = [
    "relu",
    "leaky_relu",
    "gelu",
    "tanh",
    "sigmoid",
    "softmax",
    "log_softmax",
    "identity",
    "get",
    "NAMES",
]


def _floating(name: str, x) -> jax.Array:
    x = as_array(name, x)
    check_floating_dtype(name, x)
    return x


def relu(x: jax.Array) -> jax.Array:
    """Rectified linear unit: ``relu(x) = max(0, x)``.

    Chapter 3: the default hidden-layer activation. Its derivative is 1 for ``x > 0`` and 0 for
    ``x < 0``; at the kink we pin ``relu'(0) = 0``, the subgradient :func:`jax.nn.relu` uses, so a
    unit sitting exactly at zero receives no gradient.

    Args:
      x: any array.

    Returns:
      An array like ``x``.

    Raises:
      ValueError: if ``x`` is not numeric array data.
    """
    x = as_array("relu", x)
    # ``where`` (not ``maximum``, whose derivative at a tie is 1/2) selects the zero branch at 0.
    return jnp.where(x > 0, x, jnp.zeros_like(x))


def leaky_relu(x: jax.Array, negative_slope: float = 0.01) -> jax.Array:
    """Leaky ReLU: ``x`` for ``x >= 0`` and ``negative_slope * x`` otherwise.

    Chapter 3: a small slope for negative inputs keeps a gradient flowing through units that a
    plain ReLU would switch off. The derivative at 0 is 1, as in :func:`jax.nn.leaky_relu`.

    Args:
      x: any array.
      negative_slope: slope for negative inputs.

    Returns:
      An array like ``x``.

    Raises:
      ValueError: if ``x`` is not numeric array data or ``negative_slope`` is not a number.
    """
    x = as_array("leaky_relu", x)
    if isinstance(negative_slope, (bool, str)) or not isinstance(
        negative_slope, (int, float, np.number, jax.Array)
    ):
        raise ValueError(f"leaky_relu: expected a number negative_slope, got {negative_slope!r}")
    if not isinstance(negative_slope, jax.Array):
        negative_slope = float(negative_slope)  # a Python int beyond int64 would overflow in JAX
    return jnp.where(x >= 0, x, negative_slope * x)


def gelu(x: jax.Array, approximate: bool = False) -> jax.Array:
    """Gaussian error linear unit: ``gelu(x) = x * Phi(x)``.

    Chapter 3: the input is weighted by the probability that a standard normal falls below it,
    ``Phi(x) = (1 + erf(x / sqrt(2))) / 2``. With ``approximate=True`` uses the tanh form
    ``x/2 * (1 + tanh(sqrt(2/pi) * (x + 0.044715 x^3)))``. Note the default here is the exact form,
    whereas :func:`jax.nn.gelu` defaults to the approximation.

    Args:
      x: floating-point array.
      approximate: use the tanh approximation instead of ``erf``.

    Returns:
      An array like ``x``.

    Raises:
      ValueError: if ``x`` is not a floating-point array.
    """
    x = _floating("gelu", x)
    if approximate:
        inner = math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)
        return 0.5 * x * (1.0 + jnp.tanh(inner))
    return 0.5 * x * (1.0 + jax.lax.erf(x / math.sqrt(2.0)))


def tanh(x: jax.Array) -> jax.Array:
    """Hyperbolic tangent: ``tanh(x) = (e^x - e^-x) / (e^x + e^-x) = 2 sigmoid(2x) - 1``.

    Chapter 3: a zero-centred squashing function onto ``(-1, 1)``; its derivative
    ``1 - tanh(x)^2`` vanishes for large ``|x|`` (the vanishing-gradient failure mode).

    Args:
      x: floating-point array.

    Returns:
      An array like ``x``.

    Raises:
      ValueError: if ``x`` is not a floating-point array.
    """
    return jnp.tanh(_floating("tanh", x))


def sigmoid(x: jax.Array) -> jax.Array:
    """Logistic sigmoid: ``sigmoid(x) = 1 / (1 + e^-x)``, squashing the reals onto ``(0, 1)``.

    Chapter 3: evaluated as XLA's ``logistic`` (``jax.nn.sigmoid``), which stays finite at the
    extremes: ``e^-x`` overflowing to ``inf`` gives ``1 / (1 + inf) = 0``. The derivative is
    ``sigmoid(x) (1 - sigmoid(x))``, at most 1/4, which vanishes for large ``|x|``; it is computed
    from the output alone, one multiply-add in the backward pass (the GRU and LSTM gates call this
    once per gate and time step).

    Args:
      x: floating-point array.

    Returns:
      An array like ``x``; finite (exactly 0 or 1 at the extremes) for ``|x| = 1e4``.

    Raises:
      ValueError: if ``x`` is not a floating-point array.
    """
    x = _floating("sigmoid", x)
    return jax.nn.sigmoid(x)


def softmax(x: jax.Array, axis: int = -1) -> jax.Array:
    """Softmax: ``softmax(x)_i = exp(x_i - m) / sum_j exp(x_j - m)`` with ``m = max_j x_j``.

    Chapter 5: turns class scores (logits) into probabilities that are positive and sum to one
    along ``axis``. Subtracting the maximum changes nothing mathematically but keeps every
    exponent <= 0, so nothing overflows. The result is invariant to adding a constant to ``x``.

    Args:
      x: floating-point array of rank >= 1.
      axis: the axis to normalize over.

    Returns:
      An array like ``x`` whose entries along ``axis`` sum to 1.

    Raises:
      ValueError: if ``x`` is not a floating-point array, or ``axis`` is not a non-empty axis of
        ``x``.
    """
    x = _floating("softmax", x)
    axis = check_axis("softmax", x, axis)
    check_nonempty_axis("softmax", x, axis)
    shifted = x - jax.lax.stop_gradient(jnp.max(x, axis=axis, keepdims=True))
    e = jnp.exp(shifted)
    return e / jnp.sum(e, axis=axis, keepdims=True)


def log_softmax(x: jax.Array, axis: int = -1) -> jax.Array:
    """Log-softmax: ``log_softmax(x)_i = x_i - m - log sum_j exp(x_j - m)``, ``m = max_j x_j``.

    Chapter 4/5: the log-probabilities used by cross-entropy, computed with the log-sum-exp trick
    so that logit gaps of ``1e4`` give finite values (the true class gets 0, the others ``-1e4``)
    instead of ``log(0) = -inf``.

    Args:
      x: floating-point array of rank >= 1.
      axis: the axis to normalize over.

    Returns:
      An array like ``x`` with ``logsumexp`` along ``axis`` equal to 0.

    Raises:
      ValueError: if ``x`` is not a floating-point array, or ``axis`` is not a non-empty axis of
        ``x``.
    """
    x = _floating("log_softmax", x)
    axis = check_axis("log_softmax", x, axis)
    check_nonempty_axis("log_softmax", x, axis)
    shifted = x - jax.lax.stop_gradient(jnp.max(x, axis=axis, keepdims=True))
    return shifted - jnp.log(jnp.sum(jnp.exp(shifted), axis=axis, keepdims=True))


def identity(x: jax.Array) -> jax.Array:
    """The identity ``f(x) = x``: no nonlinearity at all.

    Chapter 3: with it a stack of dense layers collapses to a single affine map, the reason every
    real network puts a nonlinear function between its layers.

    Args:
      x: any array.

    Returns:
      ``x`` as an array.

    Raises:
      ValueError: if ``x`` is not numeric array data.
    """
    return as_array("identity", x)


_BY_NAME: dict[str, Callable[[jax.Array], jax.Array]] = {
    "relu": relu,
    "leaky_relu": leaky_relu,
    "gelu": gelu,
    "gelu_tanh": functools.partial(gelu, approximate=True),
    "tanh": tanh,
    "sigmoid": sigmoid,
    "identity": identity,
}

#: Names accepted by :func:`get` (and by model configs' ``activation`` field).
NAMES: tuple[str, ...] = tuple(_BY_NAME)


def get(name: str) -> Callable[[jax.Array], jax.Array]:
    """Return the elementwise activation called ``name`` (one of :data:`NAMES`).

    Chapter 3: lets a model config choose its nonlinearity with a string.

    Args:
      name: ``"relu"``, ``"leaky_relu"``, ``"gelu"`` (exact), ``"gelu_tanh"``, ``"tanh"``,
        ``"sigmoid"`` or ``"identity"``.

    Returns:
      The function ``x -> activation(x)``.

    Raises:
      ValueError: if ``name`` is unknown; the message lists the valid names.
    """
    if not isinstance(name, str) or name not in _BY_NAME:
        raise ValueError(
            f"activations.get: unknown activation, expected one of {', '.join(NAMES)}, got {name!r}"
        )
    return _BY_NAME[name]
