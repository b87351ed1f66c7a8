"""Transformer for token sequences — Chapter 12: RNNs and Transformers for Sequences.

Token ids ``(B, T)`` become vectors (embedding plus positional information), pass through
``num_layers`` pre-norm Transformer blocks (attention and feed-forward sublayers in residual
connections), and a final layer norm. Two heads:

* ``task="language_model"``: a causal character (or token) language model. Attention is masked
  so position ``t`` sees positions ``<= t`` only, and a dense head gives next-token logits
  ``(B, T, V)``. :func:`generate` samples a continuation.
* ``task="classification"``: an encoder classifier. Attention sees the whole sequence, the token
  vectors are averaged over time and a dense head gives class logits ``(B, C)``.

Without positional information (``positional="none"``) attention cannot tell word order:
permuting the tokens permutes the outputs, and the classifier's mean-pooled logits do not change.

Params: ``{"embed": {"table": (V, D)}, ["pos": {"table": (max_len, D)}], "block_0", ...,
"ln_f", "head": {"w": (D, V or C), "b"}}``. With ``bias=False`` no dense layer or layer norm
has a bias (no ``b`` or ``bias`` leaf anywhere); with ``tie_embeddings=True`` the head reads
the embedding table (``logits = h E^T``), so ``head`` holds only ``b`` (and is absent when
``bias=False`` too): nanoGPT's ``GPT`` is ``bias=False, tie_embeddings=True,
positional="learned"``.
"""

from __future__ import annotations

import dataclasses
import functools
import typing

import jax
import jax.numpy as jnp
import numpy as np

from jaxnn._checks import (
    check_bool,
    check_integer_dtype,
    check_key,
    check_positive_int,
    check_probability,
)
from jaxnn.layers.attention import init_transformer_block, transformer_block
from jaxnn.layers.dense import dense, init_dense
from jaxnn.layers.dropout import dropout as apply_dropout
from jaxnn.layers.embedding import (
    embedding,
    init_embedding,
    init_learned_positions,
    learned_positions,
    sinusoidal_positions,
)
from jaxnn.layers.norm import init_layer_norm, layer_norm
from jaxnn.models._common import (
    check_cfg,
    check_state,
    config_from_info,
    dropout_active,
    param_count,
    remat_scan,
)

__all__ = ["Config", "init", "init_state", "apply", "param_count", "config_for", "generate"]


TASKS = ("language_model", "classification")  # the subset of jaxnn.data.TASKS it serves
POSITIONALS = ("sinusoidal", "learned", "none")


@dataclasses.dataclass(frozen=True)
class Config:
    """Static hyperparameters of the Transformer (Chapter 12).

    Attributes:
      vocab_size: number of token ids ``V``.
      max_len: longest sequence ``apply`` accepts (and the learned positional table's size).
      dim: model width ``D``.
      num_heads: attention heads (must divide ``dim``).
      num_layers: Transformer blocks.
      mlp_ratio: MLP hidden width as a multiple of ``dim``.
      dropout: rate on the embeddings and on every residual branch in training, in ``[0, 1)``.
      task: ``"language_model"`` (causal, logits per position) or ``"classification"``
        (mean-pooled, one row); the names of :data:`jaxnn.data.TASKS`.
      num_classes: classes for ``task="classification"``.
      positional: ``"sinusoidal"``, ``"learned"`` or ``"none"``.
      remat: rematerialization (Chapter 5: training stores activations). The backward pass keeps
        only each block's input and recomputes the block's activations (attention scores and
        weights, the MLP's hidden layer, ...) when it reaches the block: about one more forward
        pass of FLOPs for far less memory. The blocks then run as a ``lax.scan`` over their
        stacked params (the params keep ``block_0``, ``block_1``, ...); outputs and gradients
        are those without it, so a run may switch it on resume. ``benchmarks/memory.py``
        measures the memory and the time.
      bias: ``False`` drops every bias of the dense layers and layer norms (nanoGPT's
        ``bias=False``: a little faster, and no worse).
      tie_embeddings: the output head reuses the embedding table, ``logits = h E^T`` (language
        models only; nanoGPT's ``wte.weight = lm_head.weight``). The table then starts at
        ``N(0, 1/D)`` (and learned positions with it), so that the first logits have unit scale.
    """

    vocab_size: int = 256
    max_len: int = 128
    dim: int = 128
    num_heads: int = 4
    num_layers: int = 2
    mlp_ratio: int = 4
    dropout: float = 0.0
    task: str = "language_model"
    num_classes: int = 2
    positional: str = "sinusoidal"
    remat: bool = False
    bias: bool = True
    tie_embeddings: bool = False

    def __post_init__(self):
        name = "transformer.Config"
        for field in ("remat", "bias", "tie_embeddings"):
            check_bool(name, getattr(self, field), field)
        for field in ("vocab_size", "max_len", "dim", "num_heads", "num_layers", "mlp_ratio"):
            check_positive_int(name, getattr(self, field), field)
        check_positive_int(name, self.num_classes, "num_classes")
        check_probability(name, self.dropout, "dropout")
        if self.dim % self.num_heads:
            raise ValueError(
                f"{name}: expected num_heads to divide dim {self.dim}, got num_heads="
                f"{self.num_heads}"
            )
        if self.task not in TASKS:
            raise ValueError(f"{name}: expected task in {TASKS}, got {self.task!r}")
        if self.positional not in POSITIONALS:
            raise ValueError(
                f"{name}: expected positional in {POSITIONALS}, got {self.positional!r}"
            )
        if self.tie_embeddings and self.task != "language_model":
            raise ValueError(
                f"{name}: expected tie_embeddings=False for task={self.task!r} (the head of a "
                f"classifier has num_classes outputs, not the vocabulary's), got True"
            )

    @property
    def out_dim(self) -> int:
        """Width of the head: ``vocab_size`` for a language model, else ``num_classes``."""
        return self.vocab_size if self.task == "language_model" else self.num_classes


def init(key: jax.Array, cfg: Config) -> dict:
    """Initialize the Transformer.

    Chapter 12: token embeddings ``E ~ N(0, 1)`` (and, for ``positional="learned"``, positions
    ``P ~ N(0, 1)``, the scale of the sinusoidal table), ``num_layers`` blocks, a final layer norm
    and a Glorot-uniform head.

    Args:
      key: PRNG key.
      cfg: the :class:`Config`.

    Returns:
      the params dict described in the module docstring.
    """
    check_cfg("transformer.init", cfg, Config)
    check_key("transformer.init", key)
    k_embed, k_pos, k_head, *k_blocks = jax.random.split(key, 3 + cfg.num_layers)
    scale = cfg.dim**-0.5 if cfg.tie_embeddings else 1.0  # tied: unit-scale first logits
    params = {"embed": init_embedding(k_embed, cfg.vocab_size, cfg.dim, stddev=scale)}
    if cfg.positional == "learned":
        params["pos"] = init_learned_positions(k_pos, cfg.max_len, cfg.dim, stddev=scale)
    for i, k in enumerate(k_blocks):
        params[f"block_{i}"] = init_transformer_block(
            k, cfg.dim, cfg.num_heads, cfg.mlp_ratio, bias=cfg.bias
        )
    params["ln_f"] = init_layer_norm(cfg.dim, bias=cfg.bias)
    head = init_dense(k_head, cfg.dim, cfg.out_dim, bias=cfg.bias)
    if cfg.tie_embeddings:
        head.pop("w")  # the embedding table is the head's matrix
    if head:
        params["head"] = head
    return params


def init_state(cfg: Config) -> dict:
    """The Transformer has no non-trained state: ``{}`` (see :mod:`jaxnn.models`)."""
    check_cfg("transformer.init_state", cfg, Config)
    return {}


def _expected_keys(cfg: Config) -> list[str]:
    keys = ["embed", "ln_f"] + [f"block_{i}" for i in range(cfg.num_layers)]
    keys += ["head"] if cfg.bias or not cfg.tie_embeddings else []
    return sorted(keys + (["pos"] if cfg.positional == "learned" else []))


def apply(
    params: dict,
    x: jax.Array,
    *,
    cfg: Config,
    state: dict | None = None,
    train: bool = False,
    key: jax.Array | None = None,
) -> tuple[jax.Array, dict]:
    """Forward pass: ``(logits, {})``.

    Chapter 12::

        h_0 = dropout(E[x] + PE[0:T])
        h_l = block_l(h_{l-1})                l = 1..L   (causal attention for "language_model")
        lm:       logits = LN(h_L) W + b                  (B, T, V)   (W = E^T when tied)
        classify: logits = mean_t(LN(h_L)) W + b          (B, C)

    Args:
      params: from :func:`init`.
      x: integer token ids ``(B, T)`` with ``T <= cfg.max_len``.
      cfg: the :class:`Config` used by :func:`init` (required).
      state: ``None`` or ``{}`` (the Transformer is stateless; see :mod:`jaxnn.models`).
      train: training mode (enables dropout).
      key: PRNG key, required when ``train`` and ``cfg.dropout > 0``.

    Returns:
      ``(B, T, vocab_size)`` for a language model, ``(B, num_classes)`` for classification.

    Raises:
      ValueError: on float ids, a wrong rank, a sequence longer than ``max_len``, params that do
        not match ``cfg``, or dropout without a key.
    """
    name = "transformer.apply"
    check_cfg(name, cfg, Config)
    state = check_state(name, state, {})
    want = _expected_keys(cfg)
    if not isinstance(params, dict) or sorted(params) != want:
        got = sorted(params) if isinstance(params, dict) else type(params).__name__
        raise ValueError(f"{name}: expected param keys {want} for {cfg}, got {got}")
    if np.ndim(x) != 2:
        raise ValueError(
            f"{name}: expected token ids of rank 2 (B, T), got rank {np.ndim(x)} with shape "
            f"{tuple(np.shape(x))}"
        )
    check_integer_dtype(name, x, "token ids")
    length = np.shape(x)[1]
    if length > cfg.max_len:
        raise ValueError(
            f"{name}: expected a sequence of at most max_len={cfg.max_len} tokens, got length "
            f"{length}"
        )
    use_dropout = dropout_active(name, cfg.dropout, train, key)
    keys = (
        jax.random.split(typing.cast(jax.Array, key), cfg.num_layers + 1)
        if use_dropout
        else [None] * (1 + cfg.num_layers)
    )
    h = embedding(params["embed"], x)  # (B, T, D)
    if cfg.positional == "sinusoidal":
        h = h + sinusoidal_positions(length, cfg.dim, dtype=h.dtype)  # (T, D) broadcast
    elif cfg.positional == "learned":
        h = h + learned_positions(params["pos"], length)  # (T, D) broadcast
    h = apply_dropout(h, cfg.dropout, key=keys[0], train=use_dropout)
    h = _blocks(params, h, cfg, keys[1:], use_dropout)  # (B, T, D)
    h = layer_norm(params["ln_f"], h)  # (B, T, D)
    if cfg.task == "classification":
        h = h.mean(axis=1)  # (B, D)
    return _head(params, h, cfg), state  # (B, T, V) or (B, C)


def _head(params: dict, h: jax.Array, cfg: Config) -> jax.Array:
    """The output head: a dense layer, or with tied embeddings ``h E^T`` (plus ``b``)."""
    if not cfg.tie_embeddings:
        return dense(params["head"], h)
    logits = h @ params["embed"]["table"].T.astype(h.dtype)  # (B, T, V)
    return logits + params["head"]["b"] if cfg.bias else logits


def _blocks(params: dict, h: jax.Array, cfg: Config, keys, use_dropout: bool) -> jax.Array:
    """The ``num_layers`` blocks, unrolled, or with ``cfg.remat`` a rematerialized scan."""
    block = functools.partial(
        transformer_block,
        num_heads=cfg.num_heads,
        is_causal=cfg.task == "language_model",
        dropout=cfg.dropout,
        train=use_dropout,
    )
    layers = [params[f"block_{i}"] for i in range(cfg.num_layers)]
    if cfg.remat:  # one block per segment: a block's activations dwarf its input
        xs = keys if use_dropout else None  # (L, ...) keys, the same ones the loop uses
        return remat_scan(lambda p, h, k: block(p, h, key=k), layers, h, xs, segment=1)
    for p, k in zip(layers, keys, strict=True):
        h = block(p, h, key=k)  # (B, T, D)
    return h


def config_for(info, **overrides) -> Config:
    """A :class:`Config` sized for a dataset.

    Chapter 12: for ``info.task == "language_model"``: ``task="language_model"``,
    ``vocab_size = info.num_classes`` and ``max_len = info.input_shape[0]``. For
    ``"classification"`` over token ids: ``task="classification"``,
    ``num_classes = info.num_classes``,
    ``max_len = info.input_shape[0]`` and ``vocab_size`` from ``info.tokenizer`` (or an override).

    Args:
      info: an object with ``task``, ``input_shape`` and ``num_classes`` (and optionally
        ``tokenizer`` with a ``vocab_size``).
      **overrides: other :class:`Config` fields (``dim``, ``num_layers``, ...).

    Returns:
      The :class:`Config`.

    Raises:
      ValueError: if ``info`` lacks those attributes, is not a sequence dataset, has no known
        vocabulary size, or an override is not a Config field.
    """
    name = "transformer.config_for"

    def values(info):
        shape = tuple(info.input_shape)
        if len(shape) != 1:
            raise ValueError(f"{name}: expected sequences of shape (T,), got input_shape {shape}")
        if info.task == "language_model":
            values = {"task": "language_model", "vocab_size": info.num_classes, "max_len": shape[0]}
        elif info.task == "classification":
            vocab = getattr(getattr(info, "tokenizer", None), "vocab_size", None)
            vocab = overrides.get("vocab_size", vocab)
            if vocab is None:
                raise ValueError(
                    f"{name}: expected a vocabulary size (info.tokenizer or a vocab_size override) "
                    f"for a classification dataset, got neither"
                )
            values = {
                "task": "classification",
                "vocab_size": vocab,
                "num_classes": info.num_classes,
                "max_len": shape[0],
            }
        else:
            raise ValueError(
                f"{name}: expected task 'language_model' or 'classification', got {info.task!r}"
            )
        return values

    return config_from_info(
        name, Config, info, values, overrides, needs=("task", "input_shape", "num_classes")
    )


def _check_generate_args(cfg, prompt_ids, key, length, temperature) -> None:
    """Raise a ``ValueError`` naming the first bad argument of :func:`generate`."""
    name = "transformer.generate"
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


def generate(
    params: dict,
    prompt_ids: jax.Array,
    *,
    cfg: Config,
    key: jax.Array,
    length: int,
    temperature: float = 1.0,
) -> jax.Array:
    """Sample ``length`` tokens after a prompt from a causal language model.

    Chapter 12: autoregressive generation, ``x_{t+1} ~ softmax(logits_t / temperature)`` with the
    logits computed from the last ``max_len`` tokens (older ones are cropped); ``temperature=0``
    takes the argmax. The tokens live in a fixed ``(B, T0 + length)`` buffer filled by
    ``lax.fori_loop``, and the model always reads a fixed window of ``min(max_len, T0 + length)``
    tokens: causal attention makes the not-yet-written slots after the read position irrelevant.
    So ``jax.jit(generate, static_argnames=("cfg", "length", "temperature"))`` compiles once.

    Args:
      params: from :func:`init` with ``cfg.task == "language_model"``.
      cfg: the :class:`Config`.
      prompt_ids: integer ids ``(B, T0)`` or ``(T0,)``, ``T0 >= 1``.
      key: PRNG key; step ``i`` uses ``fold_in(key, i)``.
      length: number of new tokens (non-negative int).
      temperature: softmax temperature ``> 0``, or ``0`` for greedy decoding.

    Returns:
      the prompt followed by the new tokens, ``(B, T0 + length)`` (or ``(T0 + length,)``).

    Raises:
      ValueError: if ``cfg.task`` is not ``"language_model"``, the prompt is empty, not integer or
        of rank
        other than 1 or 2, ``length < 0`` or ``temperature < 0``.
    """
    _check_generate_args(cfg, prompt_ids, key, length, temperature)
    unbatched = np.ndim(prompt_ids) == 1
    prompt = jnp.atleast_2d(jnp.asarray(prompt_ids, jnp.int32))  # (B, T0)
    batch, t0 = prompt.shape
    total = t0 + int(length)
    window = min(cfg.max_len, total)
    buf = jnp.zeros((batch, total), jnp.int32).at[:, :t0].set(prompt)  # (B, T0 + length)

    def write_next(i, buf):  # fill position i from the tokens before it
        start = jnp.maximum(i - window, 0)
        context = jax.lax.dynamic_slice(buf, (0, start), (batch, window))  # (B, W)
        logits, _ = apply(params, context, cfg=cfg)  # (B, W, V)
        last = jax.lax.dynamic_index_in_dim(logits, i - 1 - start, axis=1, keepdims=False)
        if temperature == 0:
            token = jnp.argmax(last, axis=-1)  # (B,)
        else:
            token = jax.random.categorical(jax.random.fold_in(key, i), last / temperature)
        return jax.lax.dynamic_update_slice(buf, token[:, None].astype(jnp.int32), (0, i))

    buf = jax.lax.fori_loop(t0, total, write_next, buf)
    return buf[0] if unbatched else buf
