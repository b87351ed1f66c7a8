"""Self-attention and the Transformer block — Chapter 12: RNNs and Transformers for Sequences.

Self-attention lets every token weight information from every other token: a token's query is
compared with all keys, the scores become softmax weights, and the output is the weighted mean of
the values. Many heads run side by side on slices of the width. A Transformer block wraps
attention and a two-layer MLP in residual connections with layer norm in front of each (pre-norm).

Layouts follow ``jax.nn.dot_product_attention``: sequences ``(B, T, D)``, heads ``(B, T, H, Dh)``,
attention masks broadcastable to ``(B, H, Tq, Tk)`` with ``True`` meaning "may attend". Every
function also accepts one unbatched example (drop the leading ``B``), so ``jax.vmap`` over examples
gives the batched result.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from jaxnn import activations
from jaxnn._checks import (
    check_floating_dtype,
    check_key,
    check_positive_int,
    check_rank,
    param_array,
)
from jaxnn.layers.dense import dense, init_dense
from jaxnn.layers.dropout import dropout as apply_dropout
from jaxnn.layers.norm import init_layer_norm, layer_norm

__all__ = [
    "causal_mask",
    "scaled_dot_product_attention",
    "init_multi_head_attention",
    "multi_head_attention",
    "init_transformer_block",
    "transformer_block",
]


def causal_mask(t: int) -> jax.Array:
    """Boolean causal mask: position ``i`` may attend to position ``j`` iff ``j <= i``.

    Chapter 12: a language model predicts token ``t + 1`` from tokens ``0..t`` only, so attention
    must not look ahead; ``M[i, j] = (j <= i)`` is lower triangular.

    Args:
      t: sequence length (positive int).

    Returns:
      ``(T, T)`` boolean array, broadcastable to ``(B, H, T, T)``.
    """
    check_positive_int("causal_mask", t, "t")
    return jnp.tril(jnp.ones((t, t), dtype=bool))  # (T, T)


def _check_qkv(q, k, v) -> None:
    name = "scaled_dot_product_attention"
    for arr, what in ((q, "q"), (k, "k"), (v, "v")):
        if np.ndim(arr) not in (3, 4):
            raise ValueError(
                f"{name}: expected {what} of rank 4 (B, T, H, Dh) or rank 3 (T, H, Dh), got rank "
                f"{np.ndim(arr)} with shape {tuple(np.shape(arr))}"
            )
        check_floating_dtype(name, arr, what)
    if not q.ndim == k.ndim == v.ndim:
        raise ValueError(
            f"{name}: expected q, k, v of the same rank, got shapes {q.shape}, {k.shape}, {v.shape}"
        )
    if k.shape != v.shape:
        raise ValueError(f"{name}: expected k and v of the same shape, got {k.shape} and {v.shape}")
    if q.shape[-2:] != k.shape[-2:] or q.shape[:-3] != k.shape[:-3]:
        raise ValueError(
            f"{name}: expected q and k to agree on batch, heads and head width (B, _, H, Dh), "
            f"got q {q.shape} and k {k.shape}"
        )


def scaled_dot_product_attention(
    q: jax.Array,
    k: jax.Array,
    v: jax.Array,
    *,
    mask: jax.Array | None = None,
    is_causal: bool = False,
) -> jax.Array:
    """Scaled dot-product attention, per head.

    Chapter 12: ``Attention(Q, K, V) = softmax(Q K^T / sqrt(Dh) + M) V`` where ``M`` is 0 where a
    query may attend and ``-inf`` (a large negative number) elsewhere. Row ``i`` of the softmax
    says how much token ``i`` draws from each other token; dividing by ``sqrt(Dh)`` keeps the
    scores' variance independent of the head width.

    Args:
      q: queries ``(B, Tq, H, Dh)`` (or ``(Tq, H, Dh)``).
      k: keys ``(B, Tk, H, Dh)`` (or ``(Tk, H, Dh)``).
      v: values, the same shape as ``k``.
      mask: optional boolean mask broadcastable to ``(B, H, Tq, Tk)`` (``(H, Tq, Tk)`` when
        unbatched); ``True`` = may attend.
      is_causal: also apply :func:`causal_mask` (query ``i`` sees keys ``j <= i``).

    Returns:
      ``(B, Tq, H, Dh)`` (or ``(Tq, H, Dh)``). A query that may attend to nothing gets the plain
      mean of the values, as in ``jax.nn.dot_product_attention``.

    Raises:
      ValueError: on wrong ranks, mismatched shapes, non-float inputs or a mask that does not
        broadcast.
    """
    _check_qkv(q, k, v)
    unbatched = q.ndim == 3
    if unbatched:
        q, k, v = q[None], k[None], v[None]
    batch, t_q, heads, head_dim = q.shape
    t_k = k.shape[1]
    # Heads move in front of time once: XLA's CPU batched matmuls then see contiguous (T, Dh)
    # slices per (batch, head), much faster than contracting in the (B, T, H, Dh) layout.
    q, k, v = (jnp.swapaxes(a, 1, 2) for a in (q, k, v))  # (B, H, T, Dh)
    logits = jnp.einsum("bhqd,bhkd->bhqk", q, k) / math.sqrt(head_dim)  # (B, H, Tq, Tk)
    allowed = jnp.ones((1, 1, t_q, t_k), dtype=bool)  # (1, 1, Tq, Tk)
    if mask is not None:
        want = (heads, t_q, t_k) if unbatched else (batch, heads, t_q, t_k)
        mask = _check_mask(mask, want)
        allowed = allowed & (mask[None] if unbatched else mask)
    if is_causal:
        allowed = allowed & jnp.tril(jnp.ones((t_q, t_k), dtype=bool))
    # A large finite negative (not -inf) keeps fully masked rows finite: they become uniform.
    big_negative = -0.7 * jnp.finfo(logits.dtype).max
    weights = activations.softmax(
        jnp.where(allowed, logits, big_negative), axis=-1
    )  # (B, H, Tq, Tk)
    out = jnp.swapaxes(jnp.einsum("bhqk,bhkd->bhqd", weights, v), 1, 2)  # (B, Tq, H, Dh)
    return out[0] if unbatched else out


def _check_mask(mask, want: tuple[int, ...]) -> jax.Array:
    """The boolean ``mask`` as an array, once it is checked to broadcast to ``want``."""
    try:
        fits = np.broadcast_shapes(np.shape(mask), want) == want
    except ValueError:
        fits = False
    if not fits:
        raise ValueError(
            f"scaled_dot_product_attention: expected a mask broadcastable to {want}, got "
            f"shape {tuple(np.shape(mask))}"
        )
    mask_dtype = mask.dtype if hasattr(mask, "dtype") else np.asarray(mask).dtype
    if mask_dtype != np.bool_:
        raise ValueError(
            f"scaled_dot_product_attention: expected a boolean mask (True = may attend), got "
            f"dtype {mask_dtype}"
        )
    return jnp.asarray(mask)


def _check_heads(name: str, dim: int, num_heads: int) -> int:
    check_positive_int(name, num_heads, "num_heads")
    if dim % num_heads:
        raise ValueError(
            f"{name}: expected num_heads to divide the width {dim}, got num_heads={num_heads} "
            f"({dim} % {num_heads} = {dim % num_heads})"
        )
    return dim // num_heads


def init_multi_head_attention(
    key: jax.Array,
    dim: int,
    num_heads: int,
    *,
    kv_dim: int | None = None,
    bias: bool = True,
    dtype=jnp.float32,
) -> dict:
    """Create multi-head attention parameters: query, key, value and output projections.

    Chapter 12: each projection is a dense layer ``(D, D)``; head ``h`` uses columns
    ``h*Dh:(h+1)*Dh`` of the query, key and value projections, ``Dh = D / H``.

    Args:
      key: PRNG key.
      dim: model width ``D`` (positive int, divisible by ``num_heads``).
      num_heads: number of heads ``H``.
      kv_dim: width of the sequence keys and values are read from (cross-attention); ``dim`` by
        default.
      bias: with ``False``, the four projections have no bias (each ``{"w"}`` only).
      dtype: parameter dtype.

    Returns:
      ``{"q", "k", "v", "out"}``, each ``{"w", "b"}`` as made by :func:`~jaxnn.layers.init_dense`.

    Raises:
      ValueError: if ``num_heads`` does not divide ``dim``.
    """
    name = "init_multi_head_attention"
    check_positive_int(name, dim, "dim")
    _check_heads(name, dim, num_heads)
    kv_dim = dim if kv_dim is None else check_positive_int(name, kv_dim, "kv_dim")
    check_key(name, key)
    kq, kk, kv, ko = jax.random.split(key, 4)
    return {
        "q": init_dense(kq, dim, dim, bias=bias, dtype=dtype),
        "k": init_dense(kk, kv_dim, dim, bias=bias, dtype=dtype),
        "v": init_dense(kv, kv_dim, dim, bias=bias, dtype=dtype),
        "out": init_dense(ko, dim, dim, bias=bias, dtype=dtype),
    }


def multi_head_attention(
    params: dict,
    x: jax.Array,
    *,
    num_heads: int,
    mask: jax.Array | None = None,
    is_causal: bool = False,
    kv: jax.Array | None = None,
) -> jax.Array:
    """Multi-head attention: self-attention of ``x``, or cross-attention from ``x`` to ``kv``.

    Chapter 12: ``MHA(x) = concat_h(Attention(x Wq_h, s Wk_h, s Wv_h)) Wo`` with ``s = x``
    (self-attention) or ``s = kv``. Each head attends in its own ``Dh``-dimensional subspace.

    Args:
      params: from :func:`init_multi_head_attention`.
      x: queries' sequence ``(B, Tq, D)`` (or ``(Tq, D)``).
      num_heads: number of heads ``H`` (must divide ``D``).
      mask: optional boolean mask broadcastable to ``(B, H, Tq, Tk)``; ``True`` = may attend.
      is_causal: forbid attending to later positions.
      kv: optional sequence ``(B, Tk, Dkv)`` that keys and values are computed from.

    Returns:
      ``(B, Tq, D)`` (or ``(Tq, D)``).

    Raises:
      ValueError: on wrong ranks, width mismatches or heads that do not divide the width.
    """
    name = "multi_head_attention"
    if not isinstance(params, dict) or not {"q", "k", "v", "out"} <= set(params):
        got = sorted(params) if isinstance(params, dict) else type(params).__name__
        raise ValueError(f"{name}: expected params with keys ['k', 'out', 'q', 'v'], got {got}")
    check_rank(name, x, (2, 3))
    source = x if kv is None else kv
    if np.ndim(source) != np.ndim(x) or np.shape(source)[:-2] != np.shape(x)[:-2]:
        raise ValueError(
            f"{name}: expected kv with the same batch axes as x {tuple(np.shape(x))[:-2]}, got "
            f"shape {tuple(np.shape(source))}"
        )
    in_dim, dim = param_array(name, params, "q", "w", ndim=2).shape
    head_dim = _check_heads(name, dim, num_heads)
    kv_dim = param_array(name, params, "k", "w", ndim=2).shape[0]
    for arr, what, width in ((x, "x", in_dim), (source, "kv", kv_dim)):
        if np.shape(arr)[-1] != width:
            raise ValueError(
                f"{name}: expected {what} with feature size {width} (from the params), got shape "
                f"{tuple(np.shape(arr))}"
            )
    q = dense(params["q"], x)  # (B, Tq, D)
    k = dense(params["k"], source)  # (B, Tk, D)
    v = dense(params["v"], source)  # (B, Tk, D)
    split = lambda a: a.reshape(a.shape[:-1] + (num_heads, head_dim))  # (B, T, H, Dh)
    heads = scaled_dot_product_attention(
        split(q), split(k), split(v), mask=mask, is_causal=is_causal
    )  # (B, Tq, H, Dh)
    return dense(params["out"], heads.reshape(q.shape))  # (B, Tq, D)


def init_transformer_block(
    key: jax.Array,
    dim: int,
    num_heads: int,
    mlp_ratio: int = 4,
    *,
    bias: bool = True,
    dtype=jnp.float32,
) -> dict:
    """Create a pre-norm Transformer block.

    Chapter 12: a Transformer is built from attention and feed-forward blocks; the MLP widens to
    ``mlp_ratio * D`` and projects back to ``D``.

    Args:
      key: PRNG key.
      dim: model width ``D``.
      num_heads: attention heads (must divide ``dim``).
      mlp_ratio: hidden width of the MLP as a multiple of ``dim`` (positive int).
      bias: with ``False``, no dense layer or layer norm of the block has a bias (nanoGPT's
        ``bias=False``).
      dtype: parameter dtype.

    Returns:
      ``{"ln1", "attn", "ln2", "mlp": {"fc", "proj"}}``.
    """
    name = "init_transformer_block"
    check_positive_int(name, dim, "dim")
    check_positive_int(name, mlp_ratio, "mlp_ratio")
    _check_heads(name, dim, num_heads)
    check_key(name, key)
    k_attn, k_fc, k_proj = jax.random.split(key, 3)
    return {
        "ln1": init_layer_norm(dim, bias=bias, dtype=dtype),
        "attn": init_multi_head_attention(k_attn, dim, num_heads, bias=bias, dtype=dtype),
        "ln2": init_layer_norm(dim, bias=bias, dtype=dtype),
        "mlp": {
            "fc": init_dense(k_fc, dim, mlp_ratio * dim, bias=bias, dtype=dtype),
            "proj": init_dense(k_proj, mlp_ratio * dim, dim, bias=bias, dtype=dtype),
        },
    }


def transformer_block(
    params: dict,
    x: jax.Array,
    *,
    num_heads: int,
    mask: jax.Array | None = None,
    is_causal: bool = False,
    dropout: float = 0.0,
    key: jax.Array | None = None,
    train: bool = False,
) -> jax.Array:
    """Apply a pre-norm Transformer block.

    Chapter 12: ``x <- x + Dropout(MHA(LN(x)))`` then ``x <- x + Dropout(W2 GELU(W1 LN(x)))``.
    The residual path carries each token's vector unchanged, and each sub-layer adds a correction.

    Args:
      params: from :func:`init_transformer_block`.
      x: ``(B, T, D)`` (or ``(T, D)``).
      num_heads: attention heads.
      mask: optional attention mask broadcastable to ``(B, H, T, T)``; ``True`` = may attend.
      is_causal: forbid attending to later positions (language modelling).
      dropout: rate in ``[0, 1)`` for the two residual branches, used when ``train`` is True.
      key: PRNG key, required when ``train`` and ``dropout > 0``.
      train: training mode (enables dropout).

    Returns:
      ``(B, T, D)`` (or ``(T, D)``).

    Raises:
      ValueError: on bad shapes, or when dropout is active and ``key`` is None.
    """
    if not isinstance(params, dict) or not {"ln1", "attn", "ln2", "mlp"} <= set(params):
        got = sorted(params) if isinstance(params, dict) else type(params).__name__
        raise ValueError(
            f"transformer_block: expected params with keys ['attn', 'ln1', 'ln2', 'mlp'], got {got}"
        )
    if train and dropout > 0.0 and key is None:
        raise ValueError(
            "transformer_block: expected a PRNG key when train=True and dropout > 0, got key=None"
        )
    if key is not None:
        check_key("transformer_block", key)
    k_attn, k_mlp = jax.random.split(key) if key is not None else (None, None)
    h = multi_head_attention(
        params["attn"],
        layer_norm(params["ln1"], x),
        num_heads=num_heads,
        mask=mask,
        is_causal=is_causal,
    )  # (B, T, D)
    x = x + apply_dropout(h, dropout, key=k_attn, train=train)
    h = activations.gelu(dense(params["mlp"]["fc"], layer_norm(params["ln2"], x)))  # (B, T, r*D)
    h = dense(params["mlp"]["proj"], h)  # (B, T, D)
    return x + apply_dropout(h, dropout, key=k_mlp, train=train)
