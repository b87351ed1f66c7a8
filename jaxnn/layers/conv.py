"""Convolution and pooling layers — Chapter 11: Convolutional Neural Networks.

A convolution slides one small learnable filter over every position of a grid (parameter sharing),
so its parameter count depends on the filter size and the channel counts, never on the image size,
and a shifted input gives a shifted output (translation equivariance). Pooling summarizes each
neighbourhood, shrinking the grid and adding some robustness to small shifts.

Layouts: images ``(N, H, W, C)`` with kernels ``(KH, KW, I, O)`` (HWIO); signals ``(N, L, C)`` with
kernels ``(K, I, O)`` (WIO). All functions are pure; parameters are plain dicts.

The four pools are one function, :func:`pool`, with the reduction and the number of spatial axes
fixed (``max_pool2d = functools.partial(pool, kind="max", spatial_dims=2)``). When the windows tile
the input (window equal to stride, no padding) it cuts the input into tiles by a reshape and reduces
them with ``max``/``mean``, which is cheaper than ``lax.reduce_window`` on CPU
(``benchmarks/conv_cpu.py`` measures both); otherwise it calls ``lax.reduce_window``.
"""

from __future__ import annotations

import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxnn import initializers
from jaxnn._checks import (
    MAX_SIZE,
    as_array,
    check_floating_dtype,
    check_key,
    check_positive_int,
    param_array,
)
from jaxnn._compat import renamed_arguments
from jaxnn._partials import named_partial

__all__ = [
    "init_conv2d",
    "conv2d",
    "init_conv1d",
    "conv1d",
    "max_pool2d",
    "avg_pool2d",
    "max_pool1d",
    "avg_pool1d",
    "global_avg_pool",
]

_LAYOUT = {1: ("N, L, C", "(K, I, O)"), 2: ("N, H, W, C", "(KH, KW, I, O)")}
_DIMENSION_NUMBERS = {1: ("NWC", "WIO", "NWC"), 2: ("NHWC", "HWIO", "NHWC")}
_POOL_METHODS = ("auto", "reshape", "reduce_window")


# ----------------------------------------------------------------------------------------------
# Argument normalization (static Python values only, so every check is free under jit).


def _spatial_tuple(name: str, value, nsp: int, what: str) -> tuple[int, ...]:
    """``value`` as a tuple of ``nsp`` positive ints (an int is repeated)."""
    values = (value,) * nsp if isinstance(value, (int, np.integer)) else value
    if not isinstance(values, (tuple, list)) or len(values) != nsp:
        raise ValueError(f"{name}: expected {what} to be an int or {nsp} ints, got {value!r}")
    return tuple(check_positive_int(name, v, what) for v in values)


def _explicit_pads(name, spatial, window, stride, dilation, padding) -> list[tuple[int, int]]:
    """Resolve ``padding`` ("SAME", "VALID", int or per-axis (lo, hi) pairs) to (lo, hi) pairs."""
    nsp = len(spatial)
    if isinstance(padding, str):
        if padding.upper() not in ("SAME", "VALID"):
            raise ValueError(f"{name}: expected padding 'SAME', 'VALID' or an int, got {padding!r}")
        effective = tuple((k - 1) * d + 1 for k, d in zip(window, dilation, strict=True))
        return list(lax.padtype_to_pads(spatial, effective, stride, padding.upper()))
    pads = _numeric_pads(padding, nsp)
    if pads is None:
        raise ValueError(
            f"{name}: expected padding 'SAME', 'VALID', an int or {nsp} (lo, hi) pairs, "
            f"got {padding!r}"
        )
    if any(not (0 <= lo <= MAX_SIZE and 0 <= hi <= MAX_SIZE) for lo, hi in pads):
        raise ValueError(f"{name}: expected non-negative padding, got {padding!r}")
    return pads


def _numeric_pads(padding, nsp: int) -> list[tuple[int, int]] | None:
    """An int or ``nsp`` (lo, hi) int pairs as (lo, hi) pairs; None for anything else."""
    if _is_int(padding):
        return [(int(padding), int(padding))] * nsp
    pair = lambda p: isinstance(p, (tuple, list)) and len(p) == 2 and all(_is_int(v) for v in p)
    if isinstance(padding, (tuple, list)) and len(padding) == nsp and all(map(pair, padding)):
        return [(int(lo), int(hi)) for lo, hi in padding]
    return None


def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _check_fits(name, x, window, dilation, pads, what) -> None:
    """Raise if the (dilated) window is larger than the padded input on some spatial axis."""
    for axis, (n, k, d, (lo, hi)) in enumerate(
        zip(x.shape[1:-1], window, dilation, pads, strict=True)
    ):
        effective = (k - 1) * d + 1
        if n + lo + hi < effective:
            raise ValueError(
                f"{name}: expected spatial axis {axis + 1} of the input (size {n}, padded to "
                f"{n + lo + hi}) to be at least the {what} size {effective}, "
                f"got input shape {tuple(x.shape)}"
            )


def _check_input(name: str, x, nsp: int) -> jax.Array:
    x = as_array(name, x)
    if np.ndim(x) != nsp + 2:
        raise ValueError(
            f"{name}: expected input of rank {nsp + 2} ({_LAYOUT[nsp][0]}), got rank {np.ndim(x)} "
            f"with shape {tuple(np.shape(x))}"
        )
    if 0 in x.shape:
        raise ValueError(f"{name}: expected an input with no empty axis, got shape {x.shape}")
    check_floating_dtype(name, x)
    return x


# ----------------------------------------------------------------------------------------------
# Convolutions.


def _init_conv(name, key, kernel_size, in_dim, out_dim, nsp, w_init, dtype) -> dict:
    check_key(name, key)
    kernel = _spatial_tuple(name, kernel_size, nsp, "kernel_size")
    in_dim = check_positive_int(name, in_dim, "in_dim")
    out_dim = check_positive_int(name, out_dim, "out_dim")
    return {
        "w": w_init(key, (*kernel, in_dim, out_dim), dtype),  # (*K, I, O)
        "b": jnp.zeros((out_dim,), dtype),  # (O,)
    }


def _conv(name, params, x, nsp, stride, padding, dilation) -> jax.Array:
    if not isinstance(params, dict) or "w" not in params or "b" not in params:
        got = sorted(params) if isinstance(params, dict) else type(params).__name__
        raise ValueError(f"{name}: expected params with keys ['b', 'w'], got {got}")
    w, b = param_array(name, params, "w"), param_array(name, params, "b")
    if w.ndim != nsp + 2 or b.shape != (w.shape[-1],) or 0 in w.shape:
        raise ValueError(
            f"{name}: expected w of shape {_LAYOUT[nsp][1]} and b of shape (O,), "
            f"got w {w.shape}, b {b.shape}"
        )
    x = _check_input(name, x, nsp)
    if x.shape[-1] != w.shape[-2]:
        raise ValueError(
            f"{name}: expected input with {w.shape[-2]} channels on the last axis "
            f"(w is {w.shape}), got shape {x.shape}"
        )
    stride = _spatial_tuple(name, stride, nsp, "stride")
    dilation = _spatial_tuple(name, dilation, nsp, "dilation")
    window = tuple(w.shape[:nsp])
    pads = _explicit_pads(name, x.shape[1:-1], window, stride, dilation, padding)
    _check_fits(name, x, window, dilation, pads, "dilated kernel")
    dtype = jnp.result_type(x, w)  # conv_general_dilated wants one dtype for both
    y = lax.conv_general_dilated(
        x.astype(dtype),
        w.astype(dtype),
        window_strides=stride,
        padding=pads,
        rhs_dilation=dilation,
        dimension_numbers=_DIMENSION_NUMBERS[nsp],
    )
    return y + b


@renamed_arguments(in_ch="in_dim", out_ch="out_dim")
def init_conv2d(
    key: jax.Array,
    kernel_size,
    in_dim: int,
    out_dim: int,
    *,
    w_init=initializers.he_normal,
    dtype=jnp.float32,
) -> dict:
    """Create 2-D convolution parameters.

    Chapter 11: a convolutional layer owns ``out_dim`` filters of size ``KH x KW x in_dim``. The
    parameter count ``KH * KW * in_dim * out_dim + out_dim`` does not depend on the image size:
    the same filter is reused at every position (parameter sharing).

    Args:
      key: PRNG key for the weights.
      kernel_size: ``k`` or ``(KH, KW)``, positive ints.
      in_dim: number of input channels ``C`` (positive int).
      out_dim: number of output channels (filters).
      w_init: initializer ``(key, shape, dtype) -> array``; He normal with
        ``fan_in = KH * KW * in_dim`` by default (suits ReLU networks).
      dtype: parameter dtype.

    Returns:
      ``{"w": (KH, KW, in_dim, out_dim), "b": (out_dim,)}`` with zero bias.
    """
    return _init_conv("init_conv2d", key, kernel_size, in_dim, out_dim, 2, w_init, dtype)


def conv2d(params: dict, x: jax.Array, *, stride=1, padding="SAME", dilation=1) -> jax.Array:
    """Apply a 2-D convolution (cross-correlation, as in every deep-learning library).

    Chapter 11: each output is a local weighted sum over a ``KH x KW`` neighbourhood and all input
    channels, with the same filter at every position::

        y[n, i, j, o] = b[o] + sum_{u, v, c} x[n, i*s + u*d - p, j*s + v*d - p, c] * w[u, v, c, o]

    where ``s`` is the stride, ``d`` the dilation, ``p`` the leading padding, and out-of-range
    input positions read as zero.

    Args:
      params: ``{"w": (KH, KW, C, O), "b": (O,)}`` from :func:`init_conv2d`.
      x: images ``(N, H, W, C)``.
      stride: ``s`` or ``(sh, sw)``, positive.
      padding: ``"SAME"`` (output size ``ceil(H / s)``), ``"VALID"`` (no padding), an int ``p``
        padding both sides of both axes, or ``((lo_h, hi_h), (lo_w, hi_w))``.
      dilation: ``d`` or ``(dh, dw)``: the gap between kernel taps (``d = 1`` is dense).

    Returns:
      ``(N, H', W', O)``.

    Raises:
      ValueError: wrong rank, channel mismatch, malformed params, non-positive stride or dilation,
        bad padding, or a (dilated) kernel larger than the padded input.
    """
    return _conv("conv2d", params, x, 2, stride, padding, dilation)


@renamed_arguments(in_ch="in_dim", out_ch="out_dim")
def init_conv1d(
    key: jax.Array,
    kernel_size,
    in_dim: int,
    out_dim: int,
    *,
    w_init=initializers.he_normal,
    dtype=jnp.float32,
) -> dict:
    """Create 1-D convolution parameters.

    Chapter 11: ``out_dim`` filters of length ``K`` over ``in_dim`` channels;
    ``K * in_dim * out_dim + out_dim`` parameters whatever the signal length.

    Args:
      key: PRNG key for the weights.
      kernel_size: ``K`` (positive int, or a 1-tuple).
      in_dim: number of input channels.
      out_dim: number of output channels (filters).
      w_init: initializer ``(key, shape, dtype) -> array``; He normal (``fan_in = K * in_dim``) by
        default.
      dtype: parameter dtype.

    Returns:
      ``{"w": (K, in_dim, out_dim), "b": (out_dim,)}`` with zero bias.
    """
    return _init_conv("init_conv1d", key, kernel_size, in_dim, out_dim, 1, w_init, dtype)


def conv1d(params: dict, x: jax.Array, *, stride=1, padding="SAME", dilation=1) -> jax.Array:
    """Apply a 1-D convolution over signals ``(N, L, C)``.

    Chapter 11: the same local filter slides along the sequence::

        y[n, i, o] = b[o] + sum_{u, c} x[n, i*s + u*d - p, c] * w[u, c, o]

    Args:
      params: ``{"w": (K, C, O), "b": (O,)}`` from :func:`init_conv1d`.
      x: signals ``(N, L, C)``.
      stride: positive int.
      padding: ``"SAME"``, ``"VALID"``, an int ``p``, or ``((lo, hi),)``.
      dilation: positive int, the gap between kernel taps.

    Returns:
      ``(N, L', O)``.

    Raises:
      ValueError: as :func:`conv2d`.
    """
    return _conv("conv1d", params, x, 1, stride, padding, dilation)


# ----------------------------------------------------------------------------------------------
# Pooling.


def _pool_reshape(x: jax.Array, window: tuple[int, ...], kind: str) -> jax.Array:
    """Non-overlapping pooling: crop the remainder (as VALID does), then reduce the tiles.

    ``max`` combines the ``prod(window)`` strided views of the input (one per offset in the
    window) with elementwise maxima; ``avg`` reshapes into tiles and averages them.
    """
    n, *spatial, c = x.shape
    keep = [s // k * k for s, k in zip(spatial, window, strict=True)]
    x = x[(slice(None), *(slice(0, k) for k in keep), slice(None))]
    if kind == "max":
        return _tile_max(x, window)
    tiled_shape = [n]
    for s, k in zip(keep, window, strict=True):
        tiled_shape += [s // k, k]
    tiles = x.reshape(*tiled_shape, c)  # (N, H/kh, kh, W/kw, kw, C)
    return tiles.mean(axis=tuple(range(2, 2 * len(window) + 1, 2)))


def _offset_views(x: jax.Array, window: tuple[int, ...]) -> list[jax.Array]:
    """For each offset ``o`` in the window, ``x[:, o_0::k_0, o_1::k_1, :]``: one cell per tile."""
    offsets = itertools.product(*(range(k) for k in window))
    return [
        x[
            (
                slice(None),
                *(slice(o, None, k) for o, k in zip(off, window, strict=True)),
                slice(None),
            )
        ]
        for off in offsets
    ]


@functools.partial(jax.custom_jvp, nondiff_argnums=(1,))
def _tile_max(x: jax.Array, window: tuple[int, ...]) -> jax.Array:
    """Max over each tile of ``window`` cells of ``x`` (whose spatial sizes the window divides);
    its derivative splits the tangent evenly among tied maxima.

    Strided views and elementwise maxima rather than a reshape to ``(N, H/kh, kh, W/kw, kw, C)``
    and a reduction: the same values, and on XLA's CPU backend the backward pass of a 2x2 pool
    after a 28x28x32 convolution takes about a third of the time (the tile layout's comparisons
    and sums are slow there; ``benchmarks/conv_cpu.py``).
    """
    return functools.reduce(jnp.maximum, _offset_views(x, window))


@_tile_max.defjvp
def _tile_max_jvp(window, primals, tangents):
    # jnp.max's own rule divides by the number of entries equal to the max; XLA has been seen
    # (at xla_backend_optimization_level=0) to recompute the operand so that none compares
    # equal, giving 0/0 = NaN. Counting at least one winner keeps every derivative finite.
    (x,), (x_dot,) = primals, tangents
    y = _tile_max(x, window)
    hits = [view == y for view in _offset_views(x, window)]
    counts = functools.reduce(jnp.add, [hit.astype(x_dot.dtype) for hit in hits])
    views_dot = _offset_views(x_dot, window)
    total = functools.reduce(
        jnp.add, [jnp.where(hit, v, 0) for hit, v in zip(hits, views_dot, strict=True)]
    )
    return y, total / jnp.maximum(counts, 1)


def _pool_reduce_window(x, window, stride, pads, kind) -> jax.Array:
    dims, strides = (1, *window, 1), (1, *stride, 1)
    padding = ((0, 0), *pads, (0, 0))
    # Python-scalar init values let JAX recognize the max/add monoids, which carry autodiff rules.
    if kind == "max":
        return lax.reduce_window(x, -jnp.inf, lax.max, dims, strides, padding)
    total = lax.reduce_window(x, 0.0, lax.add, dims, strides, padding)
    ones = jnp.ones((1, *x.shape[1:-1], 1), x.dtype)  # (1, *spatial, 1)
    count = lax.reduce_window(ones, 0.0, lax.add, dims, strides, padding)  # window cells inside
    return total / count


_POOL_KINDS = ("max", "avg")


def pool(
    x: jax.Array,
    window,
    stride=None,
    padding="VALID",
    *,
    kind: str,
    spatial_dims: int,
    method: str = "auto",
) -> jax.Array:
    """Max or average pooling over ``(N, L, C)`` signals or ``(N, H, W, C)`` images.

    Chapter 11: pooling summarizes each neighbourhood of a feature map by one number, shrinking
    the grid and adding some robustness to small shifts. For images, with window ``(kh, kw)`` and
    stride ``(sh, sw)``::

        max: y[n, i, j, c] = max_{u < kh, v < kw}  x[n, i*sh + u, j*sw + v, c]
        avg: y[n, i, j, c] = mean_{u < kh, v < kw} x[n, i*sh + u, j*sw + v, c]

    and likewise with one spatial index for signals. A feature that moves inside its window
    leaves a max-pooled output unchanged. Padded positions count as ``-inf`` for ``max`` (never
    chosen) and are left out of the mean for ``avg`` (the divisor is the number of window cells
    inside the input). The output has ``floor((n + lo + hi - k) / s) + 1`` positions per axis.

    ``method="auto"`` reshapes when the windows tile the input (``stride == window``, no padding)
    and calls ``lax.reduce_window`` otherwise; both paths give the same values. The reshape path's
    max splits the gradient evenly among tied maxima.

    :func:`max_pool1d`, :func:`avg_pool1d`, :func:`max_pool2d` and :func:`avg_pool2d` are this
    function with ``kind`` and ``spatial_dims`` fixed.

    Args:
      x: inputs ``(N, L, C)`` (``spatial_dims=1``) or ``(N, H, W, C)`` (``spatial_dims=2``).
      window: window size, an int or one int per spatial axis.
      stride: step between windows; ``None`` means ``window`` (non-overlapping windows).
      padding: ``"VALID"`` (windows inside the input; a remainder is dropped), ``"SAME"``, an int,
        or per-axis ``(lo, hi)`` pairs.
      kind: ``"max"`` or ``"avg"``.
      spatial_dims: 1 for signals, 2 for images.
      method: ``"auto"``, or ``"reshape"`` or ``"reduce_window"`` to force one path.

    Returns:
      ``(N, L', C)`` or ``(N, H', W', C)``.

    Raises:
      ValueError: wrong rank, non-floating input, non-positive window or stride, bad padding,
        padding as large as the window, a window larger than the padded input, an unknown
        ``kind`` or ``method``, or ``method="reshape"`` with overlapping or padded windows.
    """
    name = _check_pool_kind(kind, spatial_dims, method)
    x = _check_input(name, x, spatial_dims)
    window, stride, pads = _pool_windows(name, x, window, stride, padding)
    tiles = stride == window and all(p == (0, 0) for p in pads)
    if method == "reshape" and not tiles:
        raise ValueError(
            f"{name}: expected stride == window and no padding for method='reshape', got "
            f"window {window}, stride {stride}, padding {pads}"
        )
    if tiles and method != "reduce_window":
        return _pool_reshape(x, window, kind)
    return _pool_reduce_window(x, window, stride, pads, kind)


def _check_pool_kind(kind, spatial_dims, method) -> str:
    """The pooling's name, ``<kind>_pool<spatial_dims>d``, once its three choices are checked."""
    if kind not in _POOL_KINDS or spatial_dims not in _LAYOUT:
        raise ValueError(
            f"pool: expected kind in {_POOL_KINDS} and spatial_dims in {tuple(_LAYOUT)}, got "
            f"{kind!r} and {spatial_dims!r}"
        )
    name = f"{kind}_pool{spatial_dims}d"
    if not isinstance(method, str) or method not in _POOL_METHODS:
        raise ValueError(f"{name}: expected method in {_POOL_METHODS}, got {method!r}")
    return name


def _pool_windows(name, x, window, stride, padding):
    """Checked ``(window, stride, pads)`` of a pooling of ``x``: padding smaller than the window,
    and the window no larger than the padded input."""
    nsp = x.ndim - 2
    window = _spatial_tuple(name, window, nsp, "window")
    stride = window if stride is None else _spatial_tuple(name, stride, nsp, "stride")
    ones = (1,) * nsp
    pads = _explicit_pads(name, x.shape[1:-1], window, stride, ones, padding)
    if any(lo >= k or hi >= k for (lo, hi), k in zip(pads, window, strict=True)):
        raise ValueError(
            f"{name}: expected padding smaller than the window {window} (a window of padding "
            f"alone has no value), got padding {pads}"
        )
    _check_fits(name, x, window, ones, pads, "window")
    return window, stride, pads


def _pool_member(kind: str, spatial_dims: int, what: str) -> functools.partial:
    """``pool`` with ``kind`` and ``spatial_dims`` fixed, named ``<kind>_pool<spatial_dims>d``."""
    args = f"kind={kind!r}, spatial_dims={spatial_dims}"
    doc = f"{what}: ``pool(x, window, stride, padding, {args}, method)``; see :func:`pool`."
    return named_partial(
        pool, f"{kind}_pool{spatial_dims}d", doc, kind=kind, spatial_dims=spatial_dims
    )


max_pool2d = _pool_member("max", 2, "Max pooling over ``(N, H, W, C)`` images")
avg_pool2d = _pool_member("avg", 2, "Average pooling over ``(N, H, W, C)`` images")
max_pool1d = _pool_member("max", 1, "Max pooling over ``(N, L, C)`` signals")
avg_pool1d = _pool_member("avg", 1, "Average pooling over ``(N, L, C)`` signals")


def global_avg_pool(x: jax.Array) -> jax.Array:
    """Average every feature map over all its spatial positions.

    Chapter 11: ``y[n, c] = mean_{spatial p} x[n, p, c]`` turns ``(N, *spatial, C)`` feature maps
    into one ``(N, C)`` vector per example, whatever the input size, and is invariant to any
    permutation (in particular any circular shift) of the positions.

    Args:
      x: ``(N, L, C)``, ``(N, H, W, C)`` or any ``(N, *spatial, C)`` with at least one spatial axis.

    Returns:
      ``(N, C)``.

    Raises:
      ValueError: if ``x`` is not a floating-point array, has fewer than 3 axes or an empty axis.
    """
    x = as_array("global_avg_pool", x)
    check_floating_dtype("global_avg_pool", x)
    if np.ndim(x) < 3:
        raise ValueError(
            f"global_avg_pool: expected input of rank >= 3 (N, *spatial, C), got rank "
            f"{np.ndim(x)} with shape {tuple(np.shape(x))}"
        )
    if 0 in x.shape:
        raise ValueError(f"global_avg_pool: expected no empty axis, got shape {x.shape}")
    return jnp.mean(x, axis=tuple(range(1, x.ndim - 1)))
