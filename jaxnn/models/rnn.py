"""Recurrent sequence classifier — Chapter 12: RNNs and Transformers for Sequences.

A GRU, LSTM or Elman RNN reads the sequence step by step; its final hidden state, a summary of
everything it has seen, goes through a dense layer to class logits::

    h_t = cell(h_{t-1}, x_t)    t = 1..T        logits = dropout(h_T) W + b

Inputs ``(B, T, D)`` are sequences of ``T`` steps with ``D`` features. A flat input ``(B, L)``, such
as an MNIST-1D signal ``(B, 40)``, is read as ``T = L / chunk`` steps of ``chunk`` consecutive
values: with the default ``chunk=1`` the 40 scalars are fed one per step, ``(B, 40, 1)``; with
``chunk=4`` the network sees ``(B, 10, 4)``, a shorter sequence that trains faster. Stacked layers
(``num_layers > 1``) feed each layer's outputs ``(B, T, H)`` to the next.

Params: ``{"cell_0": {"input": ..., "hidden": ...}, ..., "head": {"w": (H, C), "b": (C,)}}``.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from jaxnn._checks import check_key, check_positive_int, check_probability
from jaxnn.layers.dense import dense, init_dense
from jaxnn.layers.dropout import dropout as apply_dropout
from jaxnn.layers.recurrent import gru, init_gru, init_lstm, init_rnn, lstm, rnn
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

_CELLS = {"gru": (init_gru, gru), "lstm": (init_lstm, lstm), "rnn": (init_rnn, rnn)}


@dataclasses.dataclass(frozen=True)
class Config:
    """Static hyperparameters of the recurrent classifier (Chapter 12).

    Attributes:
      input_shape: one example's shape: ``(L,)`` (read as ``L / chunk`` steps of ``chunk`` values)
        or ``(T, D)`` (already a sequence).
      num_classes: number of output logits.
      cell: ``"gru"``, ``"lstm"`` or ``"rnn"`` (Elman).
      hidden: hidden-state sizes, one per stacked recurrent layer, input side first (an int
        ``n`` means ``(n,)``).
      chunk: values per time step for a flat ``(L,)`` input; must divide ``L``.
      dropout: rate applied to the final hidden state in training, in ``[0, 1)``.
    """

    input_shape: tuple[int, ...] = (40,)
    num_classes: int = 10
    cell: str = "gru"
    hidden: tuple = (128,)
    chunk: int = 1
    dropout: float = 0.0

    def __post_init__(self):
        name = "rnn.Config"
        raw = (self.input_shape,) if isinstance(self.input_shape, int) else self.input_shape
        shape = int_tuple(name, raw, "input_shape")
        object.__setattr__(self, "input_shape", shape)
        if len(shape) not in (1, 2) or min(shape) <= 0:
            raise ValueError(
                f"{name}: expected input_shape (L,) or (T, D) of positive sizes, got {shape}"
            )
        check_positive_int(name, self.num_classes, "num_classes")
        object.__setattr__(self, "hidden", widths(name, self.hidden))
        check_positive_int(name, self.chunk, "chunk")
        check_probability(name, self.dropout, "dropout")
        if not isinstance(self.cell, str) or self.cell not in _CELLS:
            raise ValueError(f"{name}: expected cell in {sorted(_CELLS)}, got {self.cell!r}")
        if len(shape) == 1 and shape[0] % self.chunk:
            raise ValueError(
                f"{name}: expected chunk to divide the input length {shape[0]}, got chunk="
                f"{self.chunk}"
            )
        if len(shape) == 2 and self.chunk != 1:
            raise ValueError(
                f"{name}: chunk applies to flat (L,) inputs only, got input_shape {shape} and "
                f"chunk={self.chunk}"
            )

    @property
    def sequence_shape(self) -> tuple[int, int]:
        """``(T, D)``: the time steps and features per step the recurrent layer reads."""
        if len(self.input_shape) == 2:
            return self.input_shape
        return (self.input_shape[0] // self.chunk, self.chunk)


def init(key: jax.Array, cfg: Config) -> dict:
    """Initialize the classifier.

    Chapter 12: one recurrent layer per ``hidden`` width (input weights Glorot-uniform,
    recurrent weights orthogonal, LSTM forget bias 1) and a Glorot-uniform dense head
    ``(H_last, C)``.

    Args:
      key: PRNG key.
      cfg: the :class:`Config`.

    Returns:
      ``{"cell_0", ..., "cell_{L-1}", "head"}``.
    """
    check_cfg("rnn.init", cfg, Config)
    check_key("rnn.init", key)
    init_cell = _CELLS[cfg.cell][0]
    keys = jax.random.split(key, len(cfg.hidden) + 1)
    sizes = (cfg.sequence_shape[1], *cfg.hidden)
    params = {}
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        params[f"cell_{i}"] = init_cell(keys[i], n_in, n_out)
    params["head"] = init_dense(keys[-1], sizes[-1], cfg.num_classes)
    return params


def init_state(cfg: Config) -> dict:
    """The classifier has no non-trained state: ``{}`` (see :mod:`jaxnn.models`)."""
    check_cfg("rnn.init_state", cfg, Config)
    return {}


def apply(
    params: dict,
    x: jax.Array,
    *,
    cfg: Config,
    state: dict | None = None,
    train: bool = False,
    key: jax.Array | None = None,
) -> tuple[jax.Array, dict]:
    """Forward pass: ``(logits, {})``, the logits from the last hidden state.

    Chapter 12: ``h_T = RNN(x_1..x_T)`` (the top layer's final hidden state; for an LSTM the
    ``h`` part of ``(h, c)``), then ``logits = dropout(h_T) W + b``.

    Args:
      params: from :func:`init`.
      x: ``(B, *cfg.input_shape)`` floats.
      cfg: the :class:`Config` used by :func:`init` (required).
      state: ``None`` or ``{}`` (the classifier is stateless; see :mod:`jaxnn.models`).
      train: training mode (enables dropout).
      key: PRNG key, required when ``train`` and ``cfg.dropout > 0``.

    Returns:
      ``((B, num_classes) logits, {})``.

    Raises:
      ValueError: if ``x`` does not have shape ``(B, *cfg.input_shape)``, the params do not match
        ``cfg``, or dropout is active without a key.
    """
    check_cfg("rnn.apply", cfg, Config)
    state = check_state("rnn.apply", state, {})
    want = tuple(f"cell_{i}" for i in range(len(cfg.hidden))) + ("head",)
    if not isinstance(params, dict) or sorted(params) != sorted(want):
        got = sorted(params) if isinstance(params, dict) else type(params).__name__
        raise ValueError(f"rnn.apply: expected param keys {sorted(want)} for {cfg}, got {got}")
    x = jnp.asarray(x)
    if x.ndim != len(cfg.input_shape) + 1 or x.shape[1:] != cfg.input_shape:
        raise ValueError(
            f"rnn.apply: expected input of shape (B, {', '.join(map(str, cfg.input_shape))}), "
            f"got shape {x.shape}"
        )
    use_dropout = dropout_active("rnn.apply", cfg.dropout, train, key)
    run = _CELLS[cfg.cell][1]
    h = x.reshape((x.shape[0],) + cfg.sequence_shape)  # (B, T, D)
    for i in range(len(cfg.hidden)):
        h, carry = run(params[f"cell_{i}"], h)  # (B, T, H_i)
    last = carry[0] if cfg.cell == "lstm" else carry  # (B, H): h_T of the top layer
    last = apply_dropout(last, cfg.dropout, key=key, train=use_dropout)
    return dense(params["head"], last), state  # (B, C)


def config_for(info, **overrides) -> Config:
    """A :class:`Config` sized for a classification dataset.

    Chapter 12: ``input_shape = info.input_shape`` and ``num_classes = info.num_classes``.

    Args:
      info: an object with ``input_shape`` and ``num_classes`` (and optionally ``task``, which
        must then be ``"classification"``).
      **overrides: other :class:`Config` fields (``cell``, ``hidden``, ``chunk``, ...).

    Returns:
      The :class:`Config`.

    Raises:
      ValueError: if ``info`` lacks those attributes, describes another task, or an override is
        not a Config field.
    """

    def values(info):
        task = getattr(info, "task", "classification")
        if task != "classification":
            raise ValueError(
                f"rnn.config_for: expected a classification dataset, got task {task!r}"
            )
        return {"input_shape": tuple(info.input_shape), "num_classes": info.num_classes}

    return config_from_info("rnn.config_for", Config, info, values, overrides)
