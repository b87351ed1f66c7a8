"""Recurrent sequence classifier and character language model — Chapter 12: RNNs and
Transformers for Sequences.

A GRU, LSTM or Elman RNN reads the sequence step by step; its final hidden state, a summary of
everything it has seen, goes through a dense layer to class logits::

    h_t = cell(h_{t-1}, x_t)    t = 1..T        logits = dropout(h_T) W + b

Inputs ``(B, T, D)`` are sequences of ``T`` steps with ``D`` features. A flat input ``(B, L)``, such
as an MNIST-1D signal ``(B, 40)``, is read as ``T = L / chunk`` steps of ``chunk`` consecutive
values: with the default ``chunk=1`` the 40 scalars are fed one per step, ``(B, 40, 1)``; with
``chunk=4`` the network sees ``(B, 10, 4)``, a shorter sequence that trains faster. Stacked layers
(``num_layers > 1``) feed each layer's outputs ``(B, T, H)`` to the next.

With ``task="language_model"`` the network is a language model over token ids ``(B, T)``: each
id is embedded (``embed_dim`` wide), the recurrence reads the sequence, and the head gives the
logits of the next token at every position, ``(B, T, V)`` with ``V = num_classes``::

    e_t = E[x_t]    h_t = cell(h_{t-1}, e_t)    logits_t = dropout(h_t) W + b

:func:`generate` samples from it one token at a time, carrying the hidden state forward (a
recurrence needs no window of past tokens).

Params: ``{"cell_0": {"input": ..., "hidden": ...}, ..., "head": {"w": (H, C), "b": (C,)}}``, and
``"embed": {"table": (V, embed_dim)}`` for a language model.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxnn._checks import check_integer_dtype, check_key, check_positive_int, check_probability
from jaxnn.layers.dense import dense, init_dense
from jaxnn.layers.dropout import dropout as apply_dropout
from jaxnn.layers.embedding import embedding, init_embedding
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

__all__ = ["Config", "init", "init_state", "apply", "generate", "param_count", "config_for"]

TASKS = ("classification", "language_model")

_CELLS: dict[str, tuple[Callable[..., Any], Callable[..., Any]]] = {
    "gru": (init_gru, gru),
    "lstm": (init_lstm, lstm),
    "rnn": (init_rnn, rnn),
}


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
      dropout: rate applied to the final hidden state in training, in ``[0, 1)`` (for a
        language model, to the hidden state at every position).
      task: ``"classification"`` (logits from the last hidden state) or ``"language_model"``
        (token ids in, next-token logits at every position out; ``num_classes`` is the
        vocabulary size).
      embed_dim: width of the token embedding of a language model.
    """

    input_shape: tuple[int, ...] = (40,)
    num_classes: int = 10
    cell: str = "gru"
    hidden: tuple = (128,)
    chunk: int = 1
    dropout: float = 0.0
    task: str = "classification"
    embed_dim: int = 64

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
        _check_task(name, self, shape)

    @property
    def sequence_shape(self) -> tuple[int, int]:
        """``(T, D)``: the time steps and features per step the recurrent layer reads."""
        if self.task == "language_model":
            return (self.input_shape[0], self.embed_dim)
        if len(self.input_shape) == 2:
            return self.input_shape
        return (self.input_shape[0] // self.chunk, self.chunk)


def _check_task(name: str, cfg, shape) -> None:
    if cfg.task not in TASKS:
        raise ValueError(f"{name}: expected task in {TASKS}, got {cfg.task!r}")
    check_positive_int(name, cfg.embed_dim, "embed_dim")
    if cfg.task == "language_model" and (len(shape) != 1 or cfg.chunk != 1):
        raise ValueError(
            f"{name}: a language model reads token ids (T,) one per step, got input_shape "
            f"{shape} and chunk={cfg.chunk}"
        )


def init(key: jax.Array, cfg: Config) -> dict:
    """Initialize the classifier.

    Chapter 12: one recurrent layer per ``hidden`` width (input weights Glorot-uniform,
    recurrent weights orthogonal, LSTM forget bias 1) and a Glorot-uniform dense head
    ``(H_last, C)``; a language model adds a ``(V, embed_dim)`` embedding table.

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
    if cfg.task == "language_model":  # a key of its own: the classifier's draws stay the same
        table_key = jax.random.fold_in(key, len(cfg.hidden) + 1)
        params["embed"] = init_embedding(table_key, cfg.num_classes, cfg.embed_dim)
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
    ``h`` part of ``(h, c)``), then ``logits = dropout(h_T) W + b``. A language model gives the
    next-token logits of every position, ``dropout(h_t) W + b``, from embedded token ids.

    Args:
      params: from :func:`init`.
      x: ``(B, *cfg.input_shape)`` floats (integer token ids ``(B, T)`` of any length for a
        language model).
      cfg: the :class:`Config` used by :func:`init` (required).
      state: ``None`` or ``{}`` (the classifier is stateless; see :mod:`jaxnn.models`).
      train: training mode (enables dropout).
      key: PRNG key, required when ``train`` and ``cfg.dropout > 0``.

    Returns:
      ``((B, num_classes) logits, {})``, or ``((B, T, V) logits, {})`` for a language model.

    Raises:
      ValueError: if ``x`` does not have shape ``(B, *cfg.input_shape)``, the params do not match
        ``cfg``, or dropout is active without a key.
    """
    check_cfg("rnn.apply", cfg, Config)
    state = check_state("rnn.apply", state, {})
    want = tuple(f"cell_{i}" for i in range(len(cfg.hidden))) + ("head",)
    want += ("embed",) if cfg.task == "language_model" else ()
    if not isinstance(params, dict) or sorted(params) != sorted(want):
        got = sorted(params) if isinstance(params, dict) else type(params).__name__
        raise ValueError(f"rnn.apply: expected param keys {sorted(want)} for {cfg}, got {got}")
    x = _check_input(x, cfg)
    use_dropout = dropout_active("rnn.apply", cfg.dropout, train, key)
    if cfg.task == "language_model":
        h, _ = _layers(params, embedding(params["embed"], x), cfg)  # (B, T, H)
        h = apply_dropout(h, cfg.dropout, key=key, train=use_dropout)
        return dense(params["head"], h), state  # (B, T, V)
    h = x.reshape((x.shape[0],) + cfg.sequence_shape)  # (B, T, D)
    h, carries = _layers(params, h, cfg)  # (B, T, H_last)
    last = carries[-1][0] if cfg.cell == "lstm" else carries[-1]  # (B, H): the top layer's h_T
    last = apply_dropout(last, cfg.dropout, key=key, train=use_dropout)
    return dense(params["head"], last), state  # (B, C)


def _check_input(x, cfg: Config) -> jax.Array:
    """``x`` as an array of shape ``(B, *input_shape)``; a language model takes token ids
    ``(B, T)`` of any length ``T >= 1`` (a recurrence has no fixed window)."""
    x = jnp.asarray(x)
    if cfg.task == "language_model":
        check_integer_dtype("rnn.apply", x, "token ids")
        if x.ndim != 2 or x.shape[1] == 0:
            raise ValueError(f"rnn.apply: expected token ids of shape (B, T), got shape {x.shape}")
        return x
    if x.ndim != len(cfg.input_shape) + 1 or x.shape[1:] != cfg.input_shape:
        raise ValueError(
            f"rnn.apply: expected input of shape (B, {', '.join(map(str, cfg.input_shape))}), "
            f"got shape {x.shape}"
        )
    return x


def _layers(params, h, cfg: Config, carries=None):
    """The stacked recurrences over ``h`` (B, T, D) from ``carries`` (zeros if None): the top
    layer's outputs (B, T, H) and each layer's final carry."""
    run, out = _CELLS[cfg.cell][1], []
    for i in range(len(cfg.hidden)):
        start = {} if carries is None else _initial(cfg.cell, carries[i])
        h, carry = run(params[f"cell_{i}"], h, **start)  # (B, T, H_i)
        out.append(carry)
    return h, out


def _initial(cell: str, carry) -> dict:
    return {"h0": carry[0], "c0": carry[1]} if cell == "lstm" else {"h0": carry}


def generate(
    params: dict,
    prompt_ids: jax.Array,
    *,
    cfg: Config,
    key: jax.Array,
    length: int,
    temperature: float = 1.0,
) -> jax.Array:
    """Sample ``length`` tokens after a prompt from a recurrent language model.

    Chapter 12: autoregressive generation, ``x_{t+1} ~ softmax(logits_t / temperature)``
    (``temperature=0``: the argmax). The recurrence reads the prompt once; each new token then
    costs one step of every layer from the carried hidden state, so a prompt of any length works
    (no window of past tokens).

    Args:
      params: from :func:`init` with ``cfg.task == "language_model"``.
      prompt_ids: integer ids ``(B, T0)`` or ``(T0,)``, ``T0 >= 1``.
      cfg: the :class:`Config`.
      key: PRNG key; new token ``i`` uses ``fold_in(key, i)``.
      length: number of new tokens (non-negative int).
      temperature: softmax temperature ``> 0``, or ``0`` for greedy decoding.

    Returns:
      The prompt followed by the new tokens, ``(B, T0 + length)`` (or ``(T0 + length,)``).

    Raises:
      ValueError: if ``cfg.task`` is not ``"language_model"``, the prompt is empty, not integer or
        of rank other than 1 or 2, ``length < 0`` or ``temperature < 0``.
    """
    _check_generate_args(cfg, prompt_ids, key, length, temperature)
    unbatched = np.ndim(prompt_ids) == 1
    prompt = jnp.atleast_2d(jnp.asarray(prompt_ids, jnp.int32))  # (B, T0)
    h, carries = _layers(params, embedding(params["embed"], prompt), cfg)
    logits = dense(params["head"], h[:, -1])  # (B, V): the next token's

    def sample(i, logits):
        if temperature == 0:
            return jnp.argmax(logits, axis=-1).astype(jnp.int32)
        return jax.random.categorical(jax.random.fold_in(key, i), logits / temperature)

    def step(carry, i):
        logits, carries = carry
        token = sample(i, logits).astype(jnp.int32)  # (B,)
        h, carries = _layers(params, embedding(params["embed"], token[:, None]), cfg, carries)
        return (dense(params["head"], h[:, -1]), carries), token

    _, tokens = jax.lax.scan(step, (logits, carries), jnp.arange(int(length)))  # (length, B)
    out = jnp.concatenate([prompt, tokens.T.astype(jnp.int32)], axis=1)
    return out[0] if unbatched else out


def _check_generate_args(cfg, prompt_ids, key, length, temperature) -> None:
    """Raise a ``ValueError`` naming the first bad argument of :func:`generate`."""
    name = "rnn.generate"
    check_cfg(name, cfg, Config)
    if cfg.task != "language_model":
        raise ValueError(
            f"{name}: expected a language model (task='language_model'), got task={cfg.task!r}"
        )
    if np.ndim(prompt_ids) not in (1, 2) or np.shape(prompt_ids)[-1] == 0:
        raise ValueError(
            f"{name}: expected a non-empty prompt (B, T0) or (T0,), got shape "
            f"{tuple(np.shape(prompt_ids))}"
        )
    check_integer_dtype(name, prompt_ids, "prompt ids")
    if isinstance(length, bool) or not isinstance(length, (int, np.integer)) or length < 0:
        raise ValueError(f"{name}: expected length to be a non-negative integer, got {length!r}")
    if not isinstance(temperature, (int, float)) or not 0 <= temperature < float("inf"):
        raise ValueError(f"{name}: expected temperature >= 0, got {temperature!r}")
    if temperature != 0:
        check_key(name, key)


def config_for(info, **overrides) -> Config:
    """A :class:`Config` sized for a classification or language-model dataset.

    Chapter 12: ``input_shape = info.input_shape`` and ``num_classes = info.num_classes`` (the
    vocabulary of a language model, ``info.task == "language_model"``, which sets
    ``task="language_model"``).

    Args:
      info: an object with ``input_shape`` and ``num_classes`` (and optionally ``task``, which
        must then be ``"classification"``).
      **overrides: other :class:`Config` fields (``cell``, ``hidden``, ``chunk``, ...).

    Returns:
      The :class:`Config`.

    Raises:
      ValueError: if ``info`` lacks those attributes, describes another task (regression), or
        an override is not a Config field.
    """

    def values(info):
        task = getattr(info, "task", "classification")
        if task not in TASKS:
            raise ValueError(
                f"rnn.config_for: expected a classification or language-model dataset, got "
                f"task {task!r}"
            )
        return {
            "input_shape": tuple(info.input_shape),
            "num_classes": info.num_classes,
            "task": task,
        }

    return config_from_info("rnn.config_for", Config, info, values, overrides)
