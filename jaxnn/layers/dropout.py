"""Dropout — Chapter 13: regularization by randomly disabling activations during training.

Inverted dropout: in training each activation is zeroed with probability ``rate`` and the
survivors are scaled by ``1 / (1 - rate)``, so the expected activation is unchanged and evaluation
needs no rescaling (it is the identity).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxnn._checks import as_array, check_floating_dtype, check_key, check_probability

__all__ = ["dropout"]


def dropout(
    x: jax.Array, rate: float, *, key: jax.Array | None = None, train: bool = False
) -> jax.Array:
    """Apply inverted dropout.

    Chapter 13: with a mask ``m ~ Bernoulli(1 - rate)`` drawn independently per element::

        y = m * x / (1 - rate)    (training),     y = x    (evaluation)

    so ``E[y] = x`` in both modes. For a fixed ``key`` the map ``x -> y`` is linear.

    Args:
      x: activations of any shape.
      rate: probability of dropping each element, a Python number in ``[0, 1)``.
      key: PRNG key for the mask; required when ``train`` and ``rate > 0``.
      train: drop (``True``) or pass ``x`` through unchanged (``False``).

    Returns:
      An array with the shape and dtype of ``x``.

    Raises:
      ValueError: ``rate`` outside ``[0, 1)``, non-floating ``x``, or ``train`` with ``rate > 0``
        and no PRNG ``key``.
    """
    rate = check_probability("dropout", rate, "rate")
    x = as_array("dropout", x)
    check_floating_dtype("dropout", x)
    if not train or rate == 0.0:
        return x
    if key is None:
        raise ValueError(
            f"dropout: expected a PRNG key when train=True and rate={rate} > 0, got key=None"
        )
    check_key("dropout", key)
    keep = jax.random.bernoulli(key, 1.0 - rate, jnp.shape(x))  # same shape as x
    return jnp.where(keep, x / (1.0 - rate), jnp.zeros((), x.dtype))
