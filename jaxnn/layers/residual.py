"""Residual block — Chapter 11: residual connections in convolutional networks.

A residual block adds its input back to the output of two convolutions, so the block only has to
learn a correction to the identity and gradients reach early layers through the skip path. The form
here is the post-activation basic block of the original ResNet, without normalization::

    y = relu(x + conv_2(relu(conv_1(x))))

Both convolutions keep the channel count and use stride 1 with "SAME" padding, so ``x`` and the
branch have the same shape. The block works on images ``(N, H, W, C)`` (``ndim=2``) and on signals
``(N, L, C)`` (``ndim=1``); the kernel rank in the params says which.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxnn._checks import as_array, check_key, check_positive_int, param_array
from jaxnn._compat import renamed_arguments
from jaxnn.activations import relu
from jaxnn.layers.conv import conv1d, conv2d, init_conv1d, init_conv2d

__all__ = ["init_residual_block", "residual_block"]


@renamed_arguments(channels="dim")
def init_residual_block(
    key: jax.Array, dim: int, *, kernel_size: int = 3, ndim: int = 2, dtype=jnp.float32
) -> dict:
    """Create the parameters of a residual block.

    Chapter 11: two ``dim -> dim`` convolutions; the skip path has no parameters, so the
    block costs ``2 * (k^ndim * C * C + C)`` parameters.

    Args:
      key: PRNG key.
      dim: number of channels ``C`` of the input and output.
      kernel_size: odd or even positive int, the side of both kernels.
      ndim: 2 for images ``(N, H, W, C)``, 1 for signals ``(N, L, C)``.
      dtype: parameter dtype.

    Returns:
      ``{"conv1": {"w", "b"}, "conv2": {"w", "b"}}`` with kernels ``(k, k, C, C)`` (2-D) or
      ``(k, C, C)`` (1-D).

    Raises:
      ValueError: if ``key`` is not a PRNG key, a size is not a positive integer or ``ndim`` is
        not 1 or 2.
    """
    check_key("init_residual_block", key)
    check_positive_int("init_residual_block", dim, "dim")
    check_positive_int("init_residual_block", kernel_size, "kernel_size")
    if isinstance(ndim, bool) or ndim not in (1, 2):
        raise ValueError(f"init_residual_block: expected ndim 1 or 2, got {ndim!r}")
    init = init_conv2d if ndim == 2 else init_conv1d
    k1, k2 = jax.random.split(key)
    return {
        "conv1": init(k1, kernel_size, dim, dim, dtype=dtype),
        "conv2": init(k2, kernel_size, dim, dim, dtype=dtype),
    }


def residual_block(params: dict, x: jax.Array) -> jax.Array:
    """Apply a residual block: ``y = relu(x + conv_2(relu(conv_1(x))))``.

    Chapter 11: the block computes ``x + F(x)`` and then a ReLU; with ``F = 0`` it reduces to
    ``relu(x)``, so stacking blocks never has to relearn the identity. Both convolutions use
    stride 1 and "SAME" padding.

    Args:
      params: from :func:`init_residual_block`.
      x: ``(N, H, W, C)`` for 2-D kernels or ``(N, L, C)`` for 1-D kernels.

    Returns:
      An array with the shape of ``x``.

    Raises:
      ValueError: malformed params, kernels that do not map ``C`` channels to ``C`` channels, or an
        input the convolutions reject (wrong rank or channel count).
    """
    if not isinstance(params, dict) or set(params) != {"conv1", "conv2"}:
        got = sorted(params) if isinstance(params, dict) else type(params).__name__
        raise ValueError(f"residual_block: expected params with keys ['conv1', 'conv2'], got {got}")
    ranks = set()
    for name in ("conv1", "conv2"):
        w = param_array("residual_block", params, name, "w")
        if w.ndim not in (3, 4) or w.shape[-1] != w.shape[-2]:
            raise ValueError(
                f"residual_block: expected {name} kernel (k, C, C) or (k, k, C, C), got {w.shape}"
            )
        ranks.add(w.ndim)
    if len(ranks) != 1:
        raise ValueError("residual_block: expected conv1 and conv2 kernels of one rank, got both")
    conv = conv2d if ranks == {4} else conv1d
    x = as_array("residual_block", x)
    h = relu(conv(params["conv1"], x))
    return relu(x + conv(params["conv2"], h))
