"""Recurrent layers: Elman RNN, GRU and LSTM — Chapter 12: RNNs and Transformers for Sequences.

A recurrent network reads a sequence one step at a time and carries a hidden state, a vector
storing information from the elements seen so far: ``h_t = cell(h_{t-1}, x_t)``. The GRU and LSTM
add gates that decide what to keep and what to overwrite, so information (and gradient) survives
over many steps.

Each layer is ``init_<cell>(key, in_dim, out_dim)`` and ``<cell>(params, x, ...)`` on batch-first
sequences ``(B, T, D)`` (or one sequence ``(T, D)``), run with ``lax.scan`` and returning
``(outputs (B, T, H), final state)``. The single-step cells ``rnn_cell``, ``gru_cell`` and
``lstm_cell`` take one time step ``(B, D)``. Parameters are two dense layers: ``"input"``
``(D, G*H)`` and ``"hidden"`` ``(H, G*H)`` with the ``G`` gates side by side, in the order
``[r, z, n]`` for the GRU and ``[i, f, g, o]`` for the LSTM (the PyTorch layout). The input
projection runs inside the scan, one step at a time: on XLA's CPU backend that trains faster than
one matrix product over all time steps before the scan, whose (T, B, G*H) result and gradient the
scan would slice and stack.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxnn import activations
from jaxnn._checks import (
    as_array,
    check_floating_dtype,
    check_key,
    check_positive_int,
    check_rank,
    param_array,
)
from jaxnn._compat import renamed_arguments
from jaxnn.layers.dense import dense, init_dense

__all__ = [
    "init_rnn",
    "rnn",
    "rnn_cell",
    "init_gru",
    "gru",
    "gru_cell",
    "init_lstm",
    "lstm",
    "lstm_cell",
]

_GATES = {"rnn": 1, "gru": 3, "lstm": 4}


def _init_cell(key, in_dim: int, hidden: int, gates: int, name: str, dtype) -> dict:
    """Input weights Glorot-uniform; recurrent weights one orthogonal ``(H, H)`` block per gate."""
    check_key(name, key)
    check_positive_int(name, in_dim, "in_dim")
    check_positive_int(name, hidden, "out_dim")
    k_in, k_hid = jax.random.split(key)
    orthogonal = jax.nn.initializers.orthogonal()

    def stacked_orthogonal(k, shape, dtype):
        blocks = [orthogonal(kg, (hidden, hidden), dtype) for kg in jax.random.split(k, gates)]
        return jnp.concatenate(blocks, axis=1)  # (H, G*H)

    return {
        "input": init_dense(k_in, in_dim, gates * hidden, dtype=dtype),
        "hidden": init_dense(k_hid, hidden, gates * hidden, w_init=stacked_orthogonal, dtype=dtype),
    }


def _hidden_size(name: str, params, gates: int) -> tuple[int, int]:
    """Check the two dense layers; return ``(in_dim, hidden)``."""
    if not isinstance(params, dict) or not {"input", "hidden"} <= set(params):
        got = sorted(params) if isinstance(params, dict) else type(params).__name__
        raise ValueError(f"{name}: expected params with keys ['hidden', 'input'], got {got}")
    w_in, w_hid = (param_array(name, params, layer, "w") for layer in ("input", "hidden"))
    b_in, b_hid = (param_array(name, params, layer, "b") for layer in ("input", "hidden"))
    hidden = w_hid.shape[0] if w_hid.ndim else 0
    width = gates * hidden  # G*H
    in_dim = w_in.shape[0] if w_in.ndim == 2 else 0
    shapes = (w_in.shape, w_hid.shape, b_in.shape, b_hid.shape)
    if 0 in (hidden, in_dim) or shapes != ((in_dim, width), (hidden, width), (width,), (width,)):
        raise ValueError(
            f"{name}: expected input weights (D, {gates}*H), hidden weights (H, {gates}*H) and "
            f"biases ({gates}*H,), got {w_in.shape}, {w_hid.shape}, {b_in.shape}, {b_hid.shape}"
        )
    return w_in.shape[0], hidden


def _check_input(name: str, x, in_dim: int, ranks: tuple[int, ...], layout: str) -> jax.Array:
    x = as_array(name, x)
    check_rank(name, x, ranks)
    check_floating_dtype(name, x)
    if x.shape[-1] != in_dim:
        raise ValueError(
            f"{name}: expected input {layout} with feature size D={in_dim} (from the params), "
            f"got shape {x.shape}"
        )
    return x


def _check_state(name: str, state, want: tuple[int, ...], what: str) -> jax.Array:
    state = as_array(name, state, what)
    if tuple(np.shape(state)) != want:
        raise ValueError(
            f"{name}: expected {what} of shape {want}, got shape {tuple(np.shape(state))}"
        )
    check_floating_dtype(name, state, what)
    return state


def _zeros_or(state, shape, x, params):
    """The initial carry, in the dtype every step returns (so ``lax.scan`` sees one type)."""
    dtype = jnp.result_type(x, *jax.tree_util.tree_leaves(params))
    if state is not None:
        return jnp.asarray(state, jnp.result_type(dtype, state))  # (B, H)
    return jnp.zeros(shape, dtype)  # (B, H)


# The step functions take the input already projected: gx = x_t @ W_in + b_in, (B, G*H).


def _rnn_step(hidden_params, h, gx):
    return activations.tanh(gx + dense(hidden_params, h))  # (B, H)


def _gru_step(hidden_params, h, gx):
    x_r, x_z, x_n = jnp.split(gx, 3, axis=-1)  # 3 x (B, H)
    h_r, h_z, h_n = jnp.split(dense(hidden_params, h), 3, axis=-1)  # 3 x (B, H)
    r = activations.sigmoid(x_r + h_r)
    z = activations.sigmoid(x_z + h_z)
    n = activations.tanh(x_n + r * h_n)
    return (1.0 - z) * n + z * h  # (B, H)


def _lstm_step(hidden_params, state, gx):
    h, c = state
    i, f, g, o = jnp.split(gx + dense(hidden_params, h), 4, axis=-1)  # 4 x (B, H)
    c = activations.sigmoid(f) * c + activations.sigmoid(i) * activations.tanh(g)  # (B, H)
    h = activations.sigmoid(o) * activations.tanh(c)  # (B, H)
    return h, c


def _scan(step, params, x, carry0, output):
    """Run ``carry <- step(hidden, carry, x_t W_in + b_in)`` over the time axis ``-2`` of ``x``."""
    xs = jnp.moveaxis(x, -2, 0)  # (T, B, D)

    def body(carry, x_t):
        carry = step(params["hidden"], carry, dense(params["input"], x_t))  # gx_t (B, G*H)
        return carry, output(carry)

    final, ys = jax.lax.scan(body, carry0, xs)  # ys (T, B, H)
    return jnp.moveaxis(ys, 0, -2), final  # (B, T, H)


@renamed_arguments(hidden="out_dim")
def init_rnn(key: jax.Array, in_dim: int, out_dim: int, *, dtype=jnp.float32) -> dict:
    """Create Elman RNN parameters.

    Chapter 12: the hidden state is updated by ``h_t = tanh(x_t W_x + b_x + h_{t-1} W_h + b_h)``;
    ``W_x`` is Glorot-uniform and ``W_h`` orthogonal, so at initialization the recurrence neither
    shrinks nor stretches the state.

    Args:
      key: PRNG key.
      in_dim: input features ``D``.
      out_dim: hidden-state size ``H`` (the size of each output ``h_t``).
      dtype: parameter dtype.

    Returns:
      ``{"input": {"w": (D, H), "b": (H,)}, "hidden": {"w": (H, H), "b": (H,)}}``.
    """
    return _init_cell(key, in_dim, out_dim, _GATES["rnn"], "init_rnn", dtype)


def _single_state_cell(name: str, step, gates: str, params: dict, h, x):
    """Check inputs and take one step of a cell whose state is one array ``h`` (RNN, GRU)."""
    in_dim, hidden = _hidden_size(name, params, _GATES[gates])
    x = _check_input(name, x, in_dim, (1, 2), "(B, D)")
    h = _check_state(name, h, x.shape[:-1] + (hidden,), "hidden state h")
    return step(params["hidden"], h, dense(params["input"], x))


def rnn_cell(params: dict, h: jax.Array, x: jax.Array) -> jax.Array:
    """One Elman RNN step: ``h' = tanh(x W_x + b_x + h W_h + b_h)``.

    Chapter 12: the new hidden state mixes the current input with the previous state.

    Args:
      params: from :func:`init_rnn`.
      h: previous hidden state ``(B, H)`` (or ``(H,)``).
      x: input at this step ``(B, D)`` (or ``(D,)``).

    Returns:
      the new hidden state ``(B, H)``.
    """
    return _single_state_cell("rnn_cell", _rnn_step, "rnn", params, h, x)


def _run_single_state(name: str, step, params: dict, x, h0):
    """Check inputs and scan a cell whose state is one array ``h`` (RNN, GRU)."""
    in_dim, hidden = _hidden_size(name, params, _GATES[name])
    x = _check_input(name, x, in_dim, (2, 3), "(B, T, D)")
    shape = x.shape[:-2] + (hidden,)
    if h0 is not None:
        h0 = _check_state(name, h0, shape, "h0")
    return _scan(step, params, x, _zeros_or(h0, shape, x, params), lambda h: h)


def rnn(params: dict, x: jax.Array, *, h0: jax.Array | None = None) -> tuple[jax.Array, jax.Array]:
    """Run an Elman RNN over a sequence with ``lax.scan``.

    Chapter 12: ``h_t = tanh(x_t W_x + b_x + h_{t-1} W_h + b_h)`` for ``t = 1..T``, ``h_0 = 0``
    unless given; the output at each step is ``h_t``.

    Args:
      params: from :func:`init_rnn`.
      x: inputs ``(B, T, D)`` (or ``(T, D)``).
      h0: initial state ``(B, H)``; zeros by default.

    Returns:
      ``(outputs (B, T, H), h_T (B, H))``.

    Raises:
      ValueError: on wrong rank, feature size or state shape.
    """
    return _run_single_state("rnn", _rnn_step, params, x, h0)


@renamed_arguments(hidden="out_dim")
def init_gru(key: jax.Array, in_dim: int, out_dim: int, *, dtype=jnp.float32) -> dict:
    """Create GRU parameters (gates ``[r, z, n]`` side by side).

    Chapter 12: a gated recurrent unit learns when to keep its hidden state and when to replace
    it.

    Args:
      key: PRNG key.
      in_dim: input features ``D``.
      out_dim: hidden-state size ``H`` (the size of each output ``h_t``).
      dtype: parameter dtype.

    Returns:
      ``{"input": {"w": (D, 3H), "b": (3H,)}, "hidden": {"w": (H, 3H), "b": (3H,)}}``.
    """
    return _init_cell(key, in_dim, out_dim, _GATES["gru"], "init_gru", dtype)


def gru_cell(params: dict, h: jax.Array, x: jax.Array) -> jax.Array:
    """One GRU step.

    Chapter 12::

        r  = sigmoid(x W_xr + b_xr + h W_hr + b_hr)        reset gate
        z  = sigmoid(x W_xz + b_xz + h W_hz + b_hz)        update gate
        n  = tanh(x W_xn + b_xn + r * (h W_hn + b_hn))     candidate state
        h' = (1 - z) * n + z * h

    With ``z`` near 1 the state is copied forward unchanged, which lets information and gradient
    cross many steps.

    Args:
      params: from :func:`init_gru`.
      h: previous hidden state ``(B, H)`` (or ``(H,)``).
      x: input at this step ``(B, D)`` (or ``(D,)``).

    Returns:
      the new hidden state ``(B, H)``.
    """
    return _single_state_cell("gru_cell", _gru_step, "gru", params, h, x)


def gru(params: dict, x: jax.Array, *, h0: jax.Array | None = None) -> tuple[jax.Array, jax.Array]:
    """Run a GRU over a sequence with ``lax.scan`` (see :func:`gru_cell` for one step).

    Chapter 12: ``h_t = gru_cell(h_{t-1}, x_t)`` for ``t = 1..T``, ``h_0 = 0`` unless given.

    Args:
      params: from :func:`init_gru`.
      x: inputs ``(B, T, D)`` (or ``(T, D)``).
      h0: initial state ``(B, H)``; zeros by default.

    Returns:
      ``(outputs (B, T, H), h_T (B, H))``.

    Raises:
      ValueError: on wrong rank, feature size or state shape.
    """
    return _run_single_state("gru", _gru_step, params, x, h0)


@renamed_arguments(hidden="out_dim")
def init_lstm(
    key: jax.Array, in_dim: int, out_dim: int, *, forget_bias: float = 1.0, dtype=jnp.float32
) -> dict:
    """Create LSTM parameters (gates ``[i, f, g, o]`` side by side).

    Chapter 12: the long short-term memory keeps a separate cell state ``c`` that is changed only
    by gated addition. The forget-gate bias starts at ``forget_bias`` (1 by default), so the cell
    remembers by default at the start of training.

    Args:
      key: PRNG key.
      in_dim: input features ``D``.
      out_dim: hidden-state size ``H`` (the size of each output ``h_t``).
      forget_bias: initial bias of the forget gate.
      dtype: parameter dtype.

    Returns:
      ``{"input": {"w": (D, 4H), "b": (4H,)}, "hidden": {"w": (H, 4H), "b": (4H,)}}``.
    """
    params = _init_cell(key, in_dim, out_dim, _GATES["lstm"], "init_lstm", dtype)
    b = params["input"]["b"]
    params["input"]["b"] = b.at[out_dim : 2 * out_dim].set(forget_bias)  # (4H,)
    return params


def lstm_cell(
    params: dict, state: tuple[jax.Array, jax.Array], x: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """One LSTM step on the state ``(h, c)``.

    Chapter 12::

        [i, f, g, o] = x W_x + b_x + h W_h + b_h
        c' = sigmoid(f) * c + sigmoid(i) * tanh(g)       forget some, write some
        h' = sigmoid(o) * tanh(c')                       expose some

    Args:
      params: from :func:`init_lstm`.
      state: ``(h, c)``, each ``(B, H)`` (or ``(H,)``).
      x: input at this step ``(B, D)`` (or ``(D,)``).

    Returns:
      the new state ``(h', c')``.
    """
    in_dim, hidden = _hidden_size("lstm_cell", params, _GATES["lstm"])
    x = _check_input("lstm_cell", x, in_dim, (1, 2), "(B, D)")
    if not isinstance(state, (tuple, list)) or len(state) != 2:
        raise ValueError(f"lstm_cell: expected state (h, c), got {type(state).__name__}")
    want = x.shape[:-1] + (hidden,)
    h = _check_state("lstm_cell", state[0], want, "hidden state h")
    c = _check_state("lstm_cell", state[1], want, "cell state c")
    return _lstm_step(params["hidden"], (h, c), dense(params["input"], x))


def lstm(
    params: dict,
    x: jax.Array,
    *,
    h0: jax.Array | None = None,
    c0: jax.Array | None = None,
) -> tuple[jax.Array, tuple[jax.Array, jax.Array]]:
    """Run an LSTM over a sequence with ``lax.scan`` (see :func:`lstm_cell` for one step).

    Chapter 12: ``(h_t, c_t) = lstm_cell((h_{t-1}, c_{t-1}), x_t)``; the outputs are the ``h_t``.

    Args:
      params: from :func:`init_lstm`.
      x: inputs ``(B, T, D)`` (or ``(T, D)``).
      h0: initial hidden state ``(B, H)``; zeros by default.
      c0: initial cell state ``(B, H)``; zeros by default.

    Returns:
      ``(outputs (B, T, H), (h_T, c_T))``.

    Raises:
      ValueError: on wrong rank, feature size or state shape.
    """
    in_dim, hidden = _hidden_size("lstm", params, _GATES["lstm"])
    x = _check_input("lstm", x, in_dim, (2, 3), "(B, T, D)")
    shape = x.shape[:-2] + (hidden,)
    h0, c0 = (
        None if state is None else _check_state("lstm", state, shape, what)
        for state, what in ((h0, "h0"), (c0, "c0"))
    )
    carry0 = (_zeros_or(h0, shape, x, params), _zeros_or(c0, shape, x, params))
    return _scan(_lstm_step, params, x, carry0, lambda state: state[0])
