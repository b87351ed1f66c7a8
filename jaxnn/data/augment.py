"""Data augmentation — Chapter 13: realistic variations of training inputs as a regularizer.

Each augmentation is a pure, jittable function ``f(key, x) -> x`` of a PRNG key and a batch
(batch axis first): the same key gives the same output, and each example in the batch draws its
own shift, crop or noise from that key. Augmentation is for training batches only; evaluation uses
the data as it is. :func:`get` picks one by name for a dataset:

- images (N, H, W, C): ``shift`` (zero-padded translation), ``crop`` (random crop resized back,
  a small zoom), ``noise`` (additive Gaussian);
- signals such as MNIST-1D (N, L) or (N, L, C): ``shift`` (zero-padded), ``circular_shift``
  (wrap-around), ``noise``;
- tabular inputs: ``noise``; token ids: ``none`` only.

Names combine with ``+``: ``"shift+noise"`` shifts, then adds noise (with independent keys).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from jaxnn._checks import check_floating_dtype, check_min_rank, check_positive_int

__all__ = ["random_shift", "random_crop", "gaussian_noise", "get", "AUGMENTS"]


def random_shift(
    key: jax.Array,
    x: jax.Array,
    *,
    max_shift: int,
    spatial_axes: tuple[int, ...] = (1, 2),
    circular: bool = False,
) -> jax.Array:
    """Translate each example by a random integer offset on its spatial axes.

    Chapter 11: a CNN should recognize a digit wherever it sits; shifting training inputs teaches
    that invariance. Example ``i`` moves by ``d_i ~ Uniform{-s, ..., s}`` on each spatial axis:
    ``out_i[p] = x_i[p - d_i]``, where positions outside the example read 0 (padded shift) or wrap
    around (``circular=True``, i.e. ``jnp.roll``).

    Args:
      key: PRNG key.
      x: batch (N, ...) whose ``spatial_axes`` (axes of one batch, batch axis 0 excluded) shift.
      max_shift: the largest offset ``s`` (non-negative int).
      spatial_axes: axes of ``x`` to shift: ``(1, 2)`` for (N, H, W, C) images, ``(1,)`` for
        (N, L) signals.
      circular: wrap around instead of padding with zeros.

    Returns:
      an array of the shape and dtype of ``x``.
    """
    check_min_rank("random_shift", x, 2)
    axes = tuple(spatial_axes)
    if not axes or any(not 1 <= a < x.ndim for a in axes):
        raise ValueError(
            f"random_shift: expected spatial_axes within 1..{x.ndim - 1} for input of shape "
            f"{x.shape}, got {axes}"
        )
    if isinstance(max_shift, bool) or not isinstance(max_shift, int) or max_shift < 0:
        raise ValueError(f"random_shift: expected max_shift a non-negative int, got {max_shift!r}")
    s = max_shift
    shifts = jax.random.randint(key, (x.shape[0], len(axes)), -s, s + 1)  # (N, A)
    ex_axes = tuple(a - 1 for a in axes)  # axes of one example

    def one(xi, d):
        if circular:
            return jnp.roll(xi, tuple(d[j] for j in range(len(ex_axes))), axis=ex_axes)
        pad = [(0, 0)] * xi.ndim
        for a in ex_axes:
            pad[a] = (s, s)
        padded = jnp.pad(xi, pad)
        starts = [jnp.zeros((), jnp.int32)] * xi.ndim
        for j, a in enumerate(ex_axes):
            starts[a] = (s - d[j]).astype(jnp.int32)
        return jax.lax.dynamic_slice(padded, starts, xi.shape)

    return jax.vmap(one)(x, shifts)


def random_crop(key: jax.Array, x: jax.Array, *, scale: float = 0.85) -> jax.Array:
    """Crop a random window of each image and resize it back (a random zoom-in).

    Chapter 13: example ``i`` keeps a ``(round(scale H), round(scale W))`` window at a random
    position, bilinearly resized to ``(H, W)``; the output keeps the input shape.

    Args:
      key: PRNG key.
      x: images (N, H, W, C).
      scale: side of the window relative to the image, in (0, 1].

    Returns:
      (N, H, W, C), dtype of ``x``.
    """
    if x.ndim != 4:
        raise ValueError(
            f"random_crop: expected images of rank 4 (N, H, W, C), got rank {x.ndim} with shape "
            f"{x.shape}"
        )
    if not 0.0 < float(scale) <= 1.0:
        raise ValueError(f"random_crop: expected scale in (0, 1], got {scale!r}")
    _, h, w, c = x.shape
    ch, cw = max(1, round(scale * h)), max(1, round(scale * w))
    k1, k2 = jax.random.split(key)
    tops = jax.random.randint(k1, (x.shape[0],), 0, h - ch + 1)  # (N,)
    lefts = jax.random.randint(k2, (x.shape[0],), 0, w - cw + 1)  # (N,)

    def one(xi, top, left):
        window = jax.lax.dynamic_slice(xi, (top, left, 0), (ch, cw, c))  # (ch, cw, C)
        return jax.image.resize(window, (h, w, c), method="linear").astype(xi.dtype)

    return jax.vmap(one)(x, tops, lefts)


def gaussian_noise(key: jax.Array, x: jax.Array, *, sigma: float) -> jax.Array:
    """Add independent Gaussian noise: ``x + sigma * eps``, ``eps ~ N(0, I)``.

    Chapter 13: small input noise is a smoothness prior; it also simulates sensor noise.
    """
    check_floating_dtype("gaussian_noise", x)
    if float(sigma) < 0:
        raise ValueError(f"gaussian_noise: expected sigma >= 0, got {sigma!r}")
    return x + sigma * jax.random.normal(key, x.shape, x.dtype)


def _shift(info, max_shift=None):
    axes = (1, 2) if info.modality == "image" else (1,)
    s = _default_shift(info) if max_shift is None else max_shift
    return lambda key, x: random_shift(key, x, max_shift=s, spatial_axes=axes)


def _circular(info, max_shift=None):
    s = _default_shift(info) if max_shift is None else max_shift
    return lambda key, x: random_shift(key, x, max_shift=s, spatial_axes=(1,), circular=True)


def _crop(info, scale=0.85):
    return lambda key, x: random_crop(key, x, scale=scale)


def _noise(info, sigma=0.1):
    return lambda key, x: gaussian_noise(key, x, sigma=sigma)


def _none(info):
    return lambda key, x: x


def _default_shift(info) -> int:
    return max(1, info.input_shape[0] // 8)  # 8x8 -> 1, 28x28 -> 3, MNIST-1D (40,) -> 5


# name -> (modalities it applies to, builder(info, **options) -> fn)
AUGMENTS = {
    "none": (("tabular", "signal", "image", "text"), _none),
    "shift": (("signal", "image"), _shift),
    "circular_shift": (("signal",), _circular),
    "crop": (("image",), _crop),
    "noise": (("tabular", "signal", "image"), _noise),
}


def get(name: str, info, **options) -> Callable[[jax.Array, jax.Array], jax.Array]:
    """Return the training augmentation ``f(key, x_batch) -> x_batch`` called ``name``.

    Chapter 13: data augmentation creates realistic variations of the training data. Valid
    names depend on ``info.modality`` (see the module docstring); ``"a+b"`` applies ``a`` then
    ``b`` with keys split from ``key``. Options: ``max_shift`` (shift, circular_shift), ``scale``
    (crop), ``sigma`` (noise), each passed to the augmentations that take it.

    Args:
      name: augmentation name, or several joined by ``+``.
      info: the :class:`~jaxnn.data.DatasetInfo` of the data.
      **options: see above.

    Returns:
      a pure, jittable function of ``(key, x_batch)``.

    Raises:
      ValueError: for a name that does not apply to the modality (the message lists those that
        do) or an option no chosen augmentation takes.
    """
    parts = name.split("+") if isinstance(name, str) else [name]
    valid = [n for n, (mods, _) in AUGMENTS.items() if info.modality in mods]
    built = [_build(part, valid, info, options) for part in parts]
    unused = sorted(set(options).difference(*(taken for _, taken in built)))
    if unused:
        raise ValueError(f"get: option(s) {unused} not taken by augmentation {name!r}")
    if "max_shift" in options:
        check_positive_int("get", options["max_shift"], "max_shift")
    fns = [fn for fn, _ in built]
    return fns[0] if len(fns) == 1 else _compose(fns)


def _build(part: str, valid: list[str], info, options: dict):
    """``(fn, the options it took)`` for one augmentation name of a ``+`` chain."""
    if part not in valid:
        raise ValueError(
            f"get: unknown augmentation {part!r} for {info.modality} data "
            f"({info.name}); expected one of {', '.join(valid)} (or several joined by '+')"
        )
    builder = AUGMENTS[part][1]
    names = builder.__code__.co_varnames[1 : builder.__code__.co_argcount]
    kw = {k: v for k, v in options.items() if k in names}
    return builder(info, **kw), set(kw)


def _compose(fns):
    """Apply ``fns`` in order, each with its own key split from ``key``."""

    def composed(key, x):
        for k, fn in zip(jax.random.split(key, len(fns)), fns, strict=True):
            x = fn(k, x)
        return x

    return composed
