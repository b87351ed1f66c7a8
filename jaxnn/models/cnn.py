"""Convolutional network — Chapter 11: Convolutional Neural Networks.

``logits = dense_1(dropout(relu(dense_0(flatten(features(x))))))`` where ``features`` is a stack of
blocks ``pool(relu([batch_norm](conv_i(h))))``: local filters shared across positions (locality,
parameter sharing, translation equivariance), then pooling that halves the grid and adds some
robustness to small shifts; the dense head combines the feature maps into class scores.

The input layout follows one rule, from ``cfg.input_shape`` (one example, no batch axis):

* ``(L,)``: a 1-D signal, seen as ``(L, 1)`` (one channel) and convolved with ``conv1d``;
* ``(H, W)``: a 2-D image with one channel, seen as ``(H, W, 1)``;
* ``(H, W, C)``: a 2-D image with ``C`` channels (NHWC).

Pooling by ``cfg.pool`` follows each convolution while every spatial axis is at least ``cfg.pool``
long (so small inputs such as 8x8 digits are never pooled to nothing); ``pool = 1`` disables it.

Params are a plain dict ``{"conv_0": {"w", "b"}, ..., ["bn_0": {"scale", "bias"}, ...],
"dense_0": {"w", "b"}, ..., "dense_K": {"w", "b"}}`` (one dense layer per hidden width, then the
logits). With ``cfg.batch_norm`` the running statistics live in a separate state
``{"bn_0": {"mean", "var"}, ...}`` from :func:`init_state` (the state rule of :mod:`jaxnn.models`).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import typing

import jax
import jax.numpy as jnp
import numpy as np

from jaxnn import initializers
from jaxnn._checks import check_key, check_positive_int, check_probability
from jaxnn.activations import relu
from jaxnn.layers.conv import (
    conv1d,
    conv2d,
    init_conv1d,
    init_conv2d,
    max_pool1d,
    max_pool2d,
)
from jaxnn.layers.dense import dense, init_dense
from jaxnn.layers.dropout import dropout
from jaxnn.layers.norm import batch_norm, init_batch_norm, init_batch_norm_state
from jaxnn.models._common import (
    check_cfg,
    check_state,
    config_from_info,
    dropout_active,
    int_tuple,
    param_count,
    widths,
)

__all__ = ["Config", "init", "init_state", "apply", "param_count", "config_for"]

_POOL_METHODS = ("auto", "reshape", "reduce_window")


@dataclasses.dataclass(frozen=True)
class Config:
    """Static hyperparameters of a CNN (never stored in the params pytree).

    Attributes:
      input_shape: one example's shape: ``(L,)`` (1-D signal), ``(H, W)`` or ``(H, W, C)`` (image).
      num_classes: number of output logits.
      channels: output channels of each convolution, input side first.
      kernel_size: side of every (square) convolution kernel; "SAME" padding, stride 1.
      hidden: widths of the dense hidden layers between the features and the logits (an int
        ``n`` means ``(n,)``).
      pool: max-pooling window and stride after each convolution (1: no pooling).
      dropout: probability of dropping each dense hidden unit in training, in ``[0, 1)``.
      batch_norm: batch norm between each convolution and its ReLU (the model becomes stateful).
      bn_momentum: running-statistics momentum of the batch norms.
      pool_method: ``"auto"``, ``"reshape"`` or ``"reduce_window"``: the pooling path (same values;
        ``"auto"`` takes the faster reshape path whenever the windows tile the input).
    """

    input_shape: tuple = (40,)
    num_classes: int = 10
    channels: tuple = (32, 32, 32)
    kernel_size: int = 5
    hidden: tuple = (128,)
    pool: int = 2
    dropout: float = 0.25
    batch_norm: bool = False
    bn_momentum: float = 0.9
    pool_method: str = "auto"

    def __post_init__(self):
        name = "cnn.Config"
        if not isinstance(self.input_shape, (tuple, list)):
            raise ValueError(
                f"{name}: expected input_shape (L,), (H, W) or (H, W, C), got {self.input_shape!r}"
            )
        shape = tuple(self.input_shape)
        if not 1 <= len(shape) <= 3:
            raise ValueError(f"{name}: expected input_shape (L,), (H, W) or (H, W, C), got {shape}")
        for size in shape:
            check_positive_int(name, size, "every input_shape entry")
        channels = int_tuple(name, self.channels, "channels")
        if not channels:
            raise ValueError(f"{name}: expected channels as a non-empty tuple of ints, got ()")
        for c in channels:
            check_positive_int(name, c, "every channel count")
        object.__setattr__(self, "input_shape", tuple(int(s) for s in shape))
        object.__setattr__(self, "channels", tuple(int(c) for c in channels))
        check_positive_int(name, self.num_classes, "num_classes")
        check_positive_int(name, self.kernel_size, "kernel_size")
        object.__setattr__(self, "hidden", widths(name, self.hidden))
        check_positive_int(name, self.pool, "pool")
        check_probability(name, self.dropout, "dropout")
        check_probability(name, self.bn_momentum, "bn_momentum")
        if not isinstance(self.batch_norm, (bool, np.bool_)):
            raise ValueError(f"{name}: expected batch_norm True or False, got {self.batch_norm!r}")
        if self.pool_method not in _POOL_METHODS:
            raise ValueError(
                f"{name}: expected pool_method in {_POOL_METHODS}, got {self.pool_method!r}"
            )

    @property
    def ndim(self) -> int:
        """Number of spatial axes: 1 for ``(L,)`` inputs, 2 for ``(H, W)`` and ``(H, W, C)``."""
        return 1 if len(self.input_shape) == 1 else 2

    @property
    def in_channels(self) -> int:
        """Channels of the input: 1 unless ``input_shape`` is ``(H, W, C)``."""
        return self.input_shape[2] if len(self.input_shape) == 3 else 1

    def pooled_after(self) -> tuple[bool, ...]:
        """Whether a pool follows each convolution (the spatial size must be at least ``pool``)."""
        spatial, flags = list(self.input_shape[: self.ndim]), []
        for _ in self.channels:
            flags.append(self.pool > 1 and min(spatial) >= self.pool)
            if flags[-1]:
                spatial = [s // self.pool for s in spatial]
        return tuple(flags)

    @property
    def feature_shape(self) -> tuple[int, ...]:
        """Shape of one example's last feature map, ``(*spatial, channels[-1])``."""
        spatial = list(self.input_shape[: self.ndim])
        for pooled in self.pooled_after():
            if pooled:
                spatial = [s // self.pool for s in spatial]
        return (*spatial, self.channels[-1])


def init(key: jax.Array, cfg: Config) -> dict:
    """Initialize CNN parameters.

    Chapter 11: each convolution has ``k^d * C_in * C_out + C_out`` parameters (He normal, zero
    bias) whatever the input size; only the dense head grows with the final feature map.

    Args:
      key: PRNG key.
      cfg: the :class:`Config`.

    Returns:
      ``{"conv_i": {"w": (k, [k,] C_i, C_{i+1}), "b"}, ["bn_i": {"scale", "bias"}],
      "dense_j": {"w": (in_j, hidden_j), "b"}, ..., "dense_K": {"w": (hidden_{K-1}, classes),
      "b"}}`` with ``in_0 = prod(feature_shape)``.
    """
    check_cfg("cnn.init", cfg, Config)
    check_key("cnn.init", key)
    init_conv = init_conv1d if cfg.ndim == 1 else init_conv2d
    keys = jax.random.split(key, len(cfg.channels) + len(cfg.hidden) + 1)
    params, c_in = {}, cfg.in_channels
    for i, c_out in enumerate(cfg.channels):
        params[f"conv_{i}"] = init_conv(keys[i], cfg.kernel_size, c_in, c_out)
        if cfg.batch_norm:
            params[f"bn_{i}"] = init_batch_norm(c_out)
        c_in = c_out
    sizes = (math.prod(cfg.feature_shape), *cfg.hidden)
    head_keys = keys[len(cfg.channels) :]
    for j, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        params[f"dense_{j}"] = init_dense(head_keys[j], n_in, n_out, w_init=initializers.he_uniform)
    params[f"dense_{len(cfg.hidden)}"] = init_dense(head_keys[-1], sizes[-1], cfg.num_classes)
    return params


def init_state(cfg: Config) -> dict:
    """Initialize the non-trained state: batch-norm running statistics (empty without batch norm).

    Chapter 11: evaluation normalizes with running averages of the training batches' statistics.

    Args:
      cfg: the :class:`Config`.

    Returns:
      ``{"bn_i": {"mean": (C_i,), "var": (C_i,)}}`` when ``cfg.batch_norm``, else ``{}``.
    """
    check_cfg("cnn.init_state", cfg, Config)
    if not cfg.batch_norm:
        return {}
    return {f"bn_{i}": init_batch_norm_state(c) for i, c in enumerate(cfg.channels)}


@functools.lru_cache(maxsize=64)
def _param_shapes(cfg: Config) -> dict:
    """The params' shapes for ``cfg`` (traced abstractly, no arrays made)."""
    abstract = jax.eval_shape(functools.partial(init, cfg=cfg), jax.random.key(0))
    return jax.tree_util.tree_map(lambda a: a.shape, abstract)


def _check_params(params, cfg: Config) -> None:
    want = _param_shapes(cfg)
    got = jax.tree_util.tree_map(np.shape, params) if isinstance(params, dict) else params
    if got != want:
        raise ValueError(f"cnn.apply: expected params of shapes {want} for {cfg}, got {got}")


def apply(
    params: dict,
    x: jax.Array,
    *,
    cfg: Config,
    state: dict | None = None,
    train: bool = False,
    key: jax.Array | None = None,
) -> tuple[jax.Array, dict]:
    """Forward pass of the CNN: ``(logits, new_state)``.

    Chapter 11 (forward pass, Chapter 5): with ``h_0 = x`` as ``(B, L, C)`` or ``(B, H, W, C)``,
    ``h_{i+1} = maxpool(relu(bn(conv_i(h_i))))`` (batch norm only with ``cfg.batch_norm``, pooling
    as :meth:`Config.pooled_after` says), then ``z_{j+1} = dropout(relu(z_j W_j + b_j))`` from
    ``z_0 = flatten(h)`` for each hidden width, and ``logits = z_K W_K + b_K``.

    Args:
      params: from :func:`init` with the same ``cfg``.
      x: a batch ``(B, *cfg.input_shape)``.
      cfg: the :class:`Config` the params were made with (required).
      state: from :func:`init_state`; required when ``cfg.batch_norm``, else ``None`` or ``{}``.
      train: apply dropout and use (and update) batch statistics in the batch norms.
      key: PRNG key, required when ``train`` and ``cfg.dropout > 0``.

    Returns:
      ``(logits (B, num_classes), new_state)``; ``new_state`` equals ``state`` unless ``train``
      and ``cfg.batch_norm``.

    Raises:
      ValueError: params that do not match ``cfg``, an input not shaped ``(B, *input_shape)``, a
        missing ``key`` for dropout, or a missing or malformed ``state`` with batch norm.
    """
    check_cfg("cnn.apply", cfg, Config)
    _check_params(params, cfg)
    x = jnp.asarray(x)
    if x.ndim != len(cfg.input_shape) + 1 or tuple(x.shape[1:]) != cfg.input_shape:
        raise ValueError(
            f"cnn.apply: expected input (B, {', '.join(map(str, cfg.input_shape))}), "
            f"got shape {x.shape}"
        )
    state = check_state("cnn.apply", state, init_state(cfg))
    use_dropout = dropout_active("cnn.apply", cfg.dropout, train, key)
    conv, pool = (conv1d, max_pool1d) if cfg.ndim == 1 else (conv2d, max_pool2d)
    h = x.reshape(x.shape[0], *cfg.input_shape[: cfg.ndim], cfg.in_channels)  # (B, *S, C)
    new_state = dict(state)
    for i, pooled in enumerate(cfg.pooled_after()):
        h = conv(params[f"conv_{i}"], h)  # (B, *S, C_i)
        if cfg.batch_norm:
            h, new_state[f"bn_{i}"] = batch_norm(
                params[f"bn_{i}"], h, state=state[f"bn_{i}"], train=train, momentum=cfg.bn_momentum
            )
        h = relu(h)
        if pooled:
            h = pool(h, cfg.pool, method=cfg.pool_method)  # (B, *S / pool, C_i)
    z = h.reshape(h.shape[0], -1)  # (B, prod(feature_shape))
    for j in range(len(cfg.hidden)):
        z = relu(dense(params[f"dense_{j}"], z))  # (B, hidden_j)
        if use_dropout:
            z = dropout(
                z,
                cfg.dropout,
                key=key if j == 0 else jax.random.fold_in(typing.cast(jax.Array, key), j),
                train=True,
            )
    return dense(params[f"dense_{len(cfg.hidden)}"], z), new_state  # (B, num_classes)


def config_for(info, **overrides) -> Config:
    """A :class:`Config` sized for a dataset.

    Chapter 11: the network's input is one example's grid and its output one score per class:
    ``input_shape = info.input_shape``, ``num_classes = info.num_classes``.

    Args:
      info: any object with ``input_shape`` (one example's shape, no batch axis) and
        ``num_classes`` attributes, such as a ``jaxnn.data`` dataset info.
      **overrides: other :class:`Config` fields (``channels``, ``kernel_size``, ``dropout``, ...).

    Returns:
      The :class:`Config`.

    Raises:
      ValueError: if ``info`` lacks those attributes or an override is not a Config field.
    """
    return config_from_info(
        "cnn.config_for",
        Config,
        info,
        lambda info: {"input_shape": tuple(info.input_shape), "num_classes": info.num_classes},
        overrides,
    )
