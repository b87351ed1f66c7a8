"""Token embeddings and positional encodings — Chapter 12: RNNs and Transformers for Sequences.

A token id indexes one row of a learned table, turning discrete symbols into vectors a network can
process. Attention alone is blind to word order (it is permutation-equivariant), so a Transformer
adds positional information: either the fixed sines and cosines of :func:`sinusoidal_positions` or a
learned table read by :func:`learned_positions`. Sequences are ``(B, T)`` ids and ``(B, T, D)``
vectors, batch axis first.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxnn._checks import as_array, check_integer_dtype, check_key, check_positive_int, param_array

__all__ = [
    "init_embedding",
    "embedding",
    "sinusoidal_positions",
    "sinusoidal_table",
    "init_learned_positions",
    "learned_positions",
]


def _check_table(name: str, params) -> jax.Array:
    if not isinstance(params, dict) or "table" not in params:
        got = sorted(params) if isinstance(params, dict) else type(params).__name__
        raise ValueError(f"{name}: expected params with key 'table', got {got}")
    table = param_array(name, params, "table")
    if np.ndim(table) != 2:
        raise ValueError(
            f"{name}: expected a table of shape (rows, dim), got shape {tuple(np.shape(table))}"
        )
    return table


def _check_init(name: str, key, stddev) -> None:
    check_key(name, key)
    if isinstance(stddev, bool) or not isinstance(stddev, (int, float, np.number)):
        raise ValueError(f"{name}: expected a number stddev, got {stddev!r}")


def init_embedding(
    key: jax.Array, vocab_size: int, dim: int, *, stddev: float = 1.0, dtype=jnp.float32
) -> dict:
    """Create an embedding table.

    Chapter 12: each of the ``V`` tokens owns one trainable row ``E[v]`` of a ``(V, D)`` table,
    drawn as ``E[v, d] ~ N(0, stddev^2)``.

    Args:
      key: PRNG key for the table.
      vocab_size: number of distinct token ids ``V`` (positive int).
      dim: embedding width ``D`` (positive int).
      stddev: standard deviation of the initial entries.
      dtype: parameter dtype.

    Returns:
      ``{"table": (V, D)}``.

    Raises:
      ValueError: if ``key`` is not a PRNG key, a size is not a positive integer or ``stddev`` is
        not a number.
    """
    _check_init("init_embedding", key, stddev)
    check_positive_int("init_embedding", vocab_size, "vocab_size")
    check_positive_int("init_embedding", dim, "dim")
    return {"table": stddev * jax.random.normal(key, (vocab_size, dim), dtype)}  # (V, D)


def embedding(params: dict, ids: jax.Array) -> jax.Array:
    """Look up token vectors: ``y[..., :] = E[ids[...], :]``.

    Chapter 12: an embedding is a dense layer applied to a one-hot vector, ``onehot(id) @ E``,
    computed as a row lookup. Its gradient with respect to ``E`` scatters each output gradient
    back into the row of the id that produced it.

    Args:
      params: ``{"table": (V, D)}`` from :func:`init_embedding`.
      ids: integer token ids of any shape ``(...)``, each in ``[0, V)``.

    Returns:
      ``(..., D)``.

    Raises:
      ValueError: if ``ids`` is not an integer array, concrete ids fall outside ``[0, V)``, or the
        params are malformed.
    """
    table = _check_table("embedding", params)
    ids = as_array("embedding", ids, "token ids")
    check_integer_dtype("embedding", ids, "token ids")
    vocab_size = table.shape[0]
    if not isinstance(ids, jax.core.Tracer):  # concrete ids can be range-checked for free
        arr = np.asarray(ids)
        if arr.size and (arr.min() < 0 or arr.max() >= vocab_size):
            raise ValueError(
                f"embedding: expected token ids in [0, {vocab_size}), got values in "
                f"[{arr.min()}, {arr.max()}]"
            )
    return jnp.take(table, ids, axis=0)  # (..., D)


def sinusoidal_positions(length: int, dim: int, *, dtype=jnp.float32) -> jax.Array:
    """Fixed sinusoidal positional encodings.

    Chapter 12: position ``p`` is encoded by sines and cosines of geometrically spaced frequencies,
    ``PE[p, 2i] = sin(p / 10000^(2i/D))`` and ``PE[p, 2i+1] = cos(p / 10000^(2i/D))``, so every
    position gets a distinct vector and a fixed offset is a linear map of the encoding.

    Args:
      length: number of positions ``T`` (positive int).
      dim: encoding width ``D`` (positive int; an odd ``D`` drops the last cosine).
      dtype: output dtype.

    Returns:
      ``(T, D)``, to be added to ``(B, T, D)`` token embeddings.
    """
    check_positive_int("sinusoidal_positions", length, "length")
    check_positive_int("sinusoidal_positions", dim, "dim")
    return jnp.asarray(sinusoidal_table(length, dim), dtype)  # (T, D), rounded once


def sinusoidal_table(length: int, dim: int) -> np.ndarray:
    """The table of :func:`sinusoidal_positions` as a float64 NumPy array, made on the host.

    Chapter 12: the same sines and cosines, for code that needs the constant without a device
    or JAX's dtype rules (a weight export writes it in the params' dtype, float64 included).

    Args:
      length: number of positions ``T`` (positive int).
      dim: encoding width ``D`` (positive int).

    Returns:
      ``(T, D)`` float64.
    """
    check_positive_int("sinusoidal_table", length, "length")
    check_positive_int("sinusoidal_table", dim, "dim")
    half = (dim + 1) // 2
    freqs = 1.0 / (10000.0 ** (2.0 * np.arange(half) / dim))  # (D/2,)
    angles = np.arange(length)[:, None] * freqs[None, :]  # (T, D/2)
    table = np.stack([np.sin(angles), np.cos(angles)], axis=-1).reshape(length, 2 * half)
    return table[:, :dim]  # (T, D)


def init_learned_positions(
    key: jax.Array, max_len: int, dim: int, *, stddev: float = 0.02, dtype=jnp.float32
) -> dict:
    """Create a learned positional table.

    Chapter 12: position ``p`` owns a trainable row ``P[p]``, ``P[p, d] ~ N(0, stddev^2)``; the
    model can only see positions below ``max_len``.

    Args:
      key: PRNG key for the table.
      max_len: number of positions the table holds (positive int).
      dim: width ``D`` (positive int).
      stddev: standard deviation of the initial entries.
      dtype: parameter dtype.

    Returns:
      ``{"table": (max_len, D)}``.

    Raises:
      ValueError: if ``key`` is not a PRNG key, a size is not a positive integer or ``stddev`` is
        not a number.
    """
    _check_init("init_learned_positions", key, stddev)
    check_positive_int("init_learned_positions", max_len, "max_len")
    check_positive_int("init_learned_positions", dim, "dim")
    return {"table": stddev * jax.random.normal(key, (max_len, dim), dtype)}  # (max_len, D)


def learned_positions(params: dict, length: int) -> jax.Array:
    """Read the first ``length`` rows of a learned positional table: ``P[0:T]``.

    Chapter 12: the rows are added to the token embeddings so attention can tell positions apart.

    Args:
      params: ``{"table": (max_len, D)}`` from :func:`init_learned_positions`.
      length: sequence length ``T`` (positive int, at most ``max_len``).

    Returns:
      ``(T, D)``.

    Raises:
      ValueError: if ``length`` exceeds ``max_len`` or is not a positive int.
    """
    table = _check_table("learned_positions", params)
    check_positive_int("learned_positions", length, "length")
    max_len = table.shape[0]
    if length > max_len:
        raise ValueError(
            f"learned_positions: expected a sequence of at most {max_len} positions (the table "
            f"size), got length {length}"
        )
    return table[:length]  # (T, D)
