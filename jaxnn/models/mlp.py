"""Multilayer perceptron — Chapter 10: dense layers with nonlinearities between them.

``logits = dense_L(... act(dense_1(act(dense_0(flatten(x))))) ...)``: each hidden layer is an affine
map (Chapter 2) followed by an activation (Chapter 3), optionally followed by inverted dropout
(Chapter 13) in training; the last layer is affine only and produces the class scores.

Params are a plain dict ``{"dense_0": {"w": (in, h0), "b": (h0,)}, "dense_1": ..., "dense_L": ...}``
with one entry per dense layer, input side first (``len(cfg.hidden) + 1`` entries). The names make
pytree paths readable in logs, checkpoints and gradient-check reports.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np

from jaxnn import activations, initializers
from jaxnn._checks import (
    check_bool,
    check_key,
    check_min_rank,
    check_positive_int,
    check_probability,
)
from jaxnn.layers.dense import dense, init_dense
from jaxnn.layers.dropout import dropout
from jaxnn.models._common import (
    check_cfg,
    check_state,
    config_from_info,
    dropout_active,
    param_count,
    remat_scan,
    widths,
)

__all__ = ["Config", "init", "init_state", "apply", "param_count", "config_for"]


@dataclasses.dataclass(frozen=True)
class Config:
    """Static hyperparameters of an MLP (never stored in the params pytree).

    Attributes:
      input_dim: number of input features after flattening ``(B, ...)`` to ``(B, input_dim)``.
      hidden: widths of the hidden layers (an int ``n`` means ``(n,)``; empty: a linear
        classifier).
      num_classes: number of output logits.
      activation: a name from :data:`jaxnn.activations.NAMES`.
      dropout: probability of dropping each hidden unit in training, in ``[0, 1)``.
      remat: rematerialization (Chapter 5: training stores activations). Each run of ``n``
        consecutive hidden layers of one width (``hidden=(512,) * 9`` has a run of 8: the first
        layer maps ``input_dim`` to 512) is cut into segments of ``isqrt(n)`` layers; the
        backward pass keeps only each segment's input and recomputes the segment's activations
        when it reaches it, trading about one more forward pass of FLOPs for memory. The run
        executes as a ``lax.scan`` over its stacked params (the params keep ``dense_0``,
        ``dense_1``, ...). A layer whose width differs from its neighbours' is stored as without
        remat. Outputs and gradients are those without it. ``benchmarks/memory.py`` measures
        the memory and the time.
    """

    input_dim: int = 40
    hidden: tuple[int, ...] = (128,)
    num_classes: int = 10
    activation: str = "relu"
    dropout: float = 0.0
    remat: bool = False

    def __post_init__(self):
        check_positive_int("mlp.Config", self.input_dim, "input_dim")
        check_positive_int("mlp.Config", self.num_classes, "num_classes")
        object.__setattr__(self, "hidden", widths("mlp.Config", self.hidden))
        activations.get(self.activation)
        check_probability("mlp.Config", self.dropout, "dropout")
        check_bool("mlp.Config", self.remat, "remat")

    @property
    def sizes(self) -> tuple[int, ...]:
        """Layer widths from input to output: ``(input_dim, *hidden, num_classes)``."""
        return (self.input_dim, *self.hidden, self.num_classes)


def init(key: jax.Array, cfg: Config) -> dict:
    """Initialize MLP parameters.

    Chapter 10: one dense layer per consecutive pair of widths in
    ``(input_dim, *hidden, num_classes)``. Hidden layers use He-uniform weights for the ReLU family
    (``Var = 2 / fan_in``) and Glorot-uniform otherwise; biases start at zero.

    Args:
      key: PRNG key.
      cfg: the :class:`Config`.

    Returns:
      ``{"dense_i": {"w": (n_i, n_{i+1}), "b": (n_{i+1},)}}`` for ``i = 0 .. len(hidden)``.
    """
    check_cfg("mlp.init", cfg, Config)
    check_key("mlp.init", key)
    relu_like = cfg.activation in ("relu", "leaky_relu", "gelu", "gelu_tanh")
    hidden_init = initializers.he_uniform if relu_like else initializers.glorot_uniform
    sizes = cfg.sizes
    keys = jax.random.split(key, len(sizes) - 1)
    params = {}
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        is_last = i == len(sizes) - 2
        w_init = initializers.glorot_uniform if is_last else hidden_init
        params[f"dense_{i}"] = init_dense(keys[i], n_in, n_out, w_init=w_init)
    return params


def init_state(cfg: Config) -> dict:
    """The MLP has no non-trained state: ``{}`` (the model contract of :mod:`jaxnn.models`)."""
    check_cfg("mlp.init_state", cfg, Config)
    return {}


def _layer_names(params) -> list[str]:
    if not isinstance(params, dict) or not params:
        got = sorted(params) if isinstance(params, dict) else type(params).__name__
        raise ValueError(f"mlp.apply: expected params {{'dense_0': ..., ...}}, got {got}")
    names = [f"dense_{i}" for i in range(len(params))]
    if sorted(params) != sorted(names):
        raise ValueError(f"mlp.apply: expected param keys {names}, got {sorted(params)}")
    return names


def _check_params(params, cfg: Config) -> list[str]:
    names = _layer_names(params)
    shapes = []
    for n in names:
        w = params[n].get("w") if isinstance(params[n], dict) else None
        if w is None or np.ndim(w) != 2:
            layer = params[n]
            got = sorted(layer) if isinstance(layer, dict) else type(layer).__name__
            got = f"w of shape {np.shape(w)}" if w is not None else got
            raise ValueError(
                f"mlp.apply: expected {n} = {{'w': (in, out), 'b': (out,)}}, got {got}"
            )
        shapes.append(tuple(np.shape(w)))
    want = list(zip(cfg.sizes[:-1], cfg.sizes[1:], strict=True))
    if shapes != want:
        raise ValueError(f"mlp.apply: expected weight shapes {want} for {cfg}, got {shapes}")
    return names


def apply(
    params: dict,
    x: jax.Array,
    *,
    cfg: Config,
    state: dict | None = None,
    train: bool = False,
    key: jax.Array | None = None,
) -> tuple[jax.Array, dict]:
    """Forward pass of the MLP: ``(logits, state)``.

    Chapter 10 (forward pass, Chapter 5): with ``h_0 = flatten(x)``,
    ``h_{i+1} = dropout(act(h_i W_i + b_i))`` for the hidden layers and
    ``logits = h_L W_L + b_L``. In training with ``cfg.dropout = p > 0``, each hidden unit is
    zeroed with probability ``p`` (:func:`jaxnn.layers.dropout.dropout`, a
    ``jax.random.bernoulli`` mask drawn with ``fold_in(key, layer)``) and the survivors scaled by
    ``1 / (1 - p)`` so that the expected activation is unchanged; at evaluation nothing is dropped.

    Args:
      params: from :func:`init`.
      x: inputs ``(B, ...)`` with ``prod(x.shape[1:]) == input_dim``; flattened to
        ``(B, input_dim)``.
      cfg: the :class:`Config` the params were made with (required; the shapes are checked).
      state: ``None`` or ``{}`` (the MLP is stateless; see :mod:`jaxnn.models`).
      train: apply dropout.
      key: PRNG key, required when ``train`` and ``cfg.dropout > 0``.

    Returns:
      ``(logits (B, num_classes), {})``.

    Raises:
      ValueError: on a missing or wrong ``cfg``, malformed params, params that do not match
        ``cfg``, an input of rank < 2 or of the wrong size, or a missing ``key`` for dropout.
    """
    check_cfg("mlp.apply", cfg, Config)
    names = _check_params(params, cfg)
    state = check_state("mlp.apply", state, {})
    x = jnp.asarray(x)
    check_min_rank("mlp.apply", x, 2)
    input_dim = np.shape(params["dense_0"]["w"])[0]
    if math.prod(x.shape[1:]) != input_dim:
        raise ValueError(
            f"mlp.apply: expected input (B, ...) with {input_dim} features per example, got shape "
            f"{x.shape} ({math.prod(x.shape[1:])} features)"
        )
    use_dropout = dropout_active("mlp.apply", cfg.dropout, train, key)
    act = activations.get(cfg.activation)

    def layer(p, h, i):  # hidden layer i: (B, n_i) -> (B, n_{i+1})
        h = act(dense(p, h))
        if use_dropout:
            h = dropout(h, cfg.dropout, key=jax.random.fold_in(key, i), train=True)
        return h

    h = x.reshape(x.shape[0], input_dim)  # (B, input_dim)
    hidden = [params[name] for name in names[:-1]]
    if cfg.remat:
        h = _remat_hidden(layer, hidden, h, cfg.sizes)
    else:
        for i, p in enumerate(hidden):
            h = layer(p, h, i)  # (B, hidden_i)
    return dense(params[names[-1]], h), state  # (B, num_classes)


def _remat_hidden(layer, hidden: list, h: jax.Array, sizes: tuple[int, ...]) -> jax.Array:
    """The hidden layers with ``cfg.remat``: each run of equal widths a segmented remat scan."""
    for start, stop in _equal_width_runs(sizes):
        if stop - start == 1:
            h = layer(hidden[start], h, start)
        else:  # the layer index i comes from the scan: fold_in(key, i) gives the loop's keys
            ids = jnp.arange(start, stop)  # (n,)
            segment = math.isqrt(stop - start)
            h = remat_scan(layer, hidden[start:stop], h, ids, segment=segment)
    return h


def _equal_width_runs(sizes: tuple[int, ...]) -> list[tuple[int, int]]:
    """Maximal runs ``[start, stop)`` of hidden layers with equal weight shapes.

    Hidden layer ``i`` maps ``sizes[i]`` to ``sizes[i + 1]``; ``(40, 64, 64, 64, 10)`` gives
    ``[(0, 1), (1, 3)]``: layer 0 alone (40 -> 64), layers 1 and 2 (64 -> 64) together.
    """
    shapes = list(zip(sizes[:-2], sizes[1:-1], strict=True))  # hidden layers only
    runs: list[tuple[int, int]] = []
    for i, shape in enumerate(shapes):
        if runs and shapes[runs[-1][0]] == shape:
            runs[-1] = (runs[-1][0], i + 1)
        else:
            runs.append((i, i + 1))
    return runs


def config_for(info, **overrides) -> Config:
    """A :class:`Config` sized for a dataset.

    Chapter 10: the input width is the number of features of one example and the output width the
    number of classes: ``input_dim = prod(info.input_shape)``, ``num_classes = info.num_classes``.

    Args:
      info: any object with ``input_shape`` (one example's shape, no batch axis) and
        ``num_classes`` attributes.
      **overrides: other :class:`Config` fields (``hidden``, ``activation``, ``dropout``, ...).

    Returns:
      The :class:`Config`.

    Raises:
      ValueError: if ``info`` lacks those attributes or an override is not a Config field.
    """
    return config_from_info(
        "mlp.config_for",
        Config,
        info,
        lambda info: {
            "input_dim": math.prod(tuple(info.input_shape)),
            "num_classes": info.num_classes,
        },
        overrides,
    )
