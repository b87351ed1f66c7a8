"""Hand-written pure-JAX train steps with the math of the jaxnn models, for ``jaxnn bench``.

Each forward pass is written out with ``jax.numpy`` (and ``lax`` for the convolution and the
scan) on the params dict that :func:`jaxnn.models.build` ``.init`` makes, so it computes the same
function as the jaxnn model; the loss is the mean cross-entropy and the optimizer a hand-written
Adam (Chapter 8). The step returns the loss only: no metrics, no guard, plain ``jax.jit``. It is
the yardstick for the overhead of :func:`jaxnn.train.step.make_train_step`.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

__all__ = ["adam_step", "cnn_head", "forward", "make_step"]


def _dense(p, x):
    return x @ p["w"] + p["b"]


def _mlp(params, x, cfg):
    h = x.reshape(x.shape[0], -1)  # (B, D)
    for i in range(len(cfg.hidden)):
        h = jnp.maximum(_dense(params[f"dense_{i}"], h), 0.0)
    return _dense(params[f"dense_{len(cfg.hidden)}"], h)


def _max_pool(h, p):
    b, height, width, c = h.shape
    h = h[:, : height // p * p, : width // p * p]
    return h.reshape(b, height // p, p, width // p, p, c).max(axis=(2, 4))


def _cnn(params, x, cfg):
    if cfg.ndim != 2:
        raise ValueError(f"twins_jax: expected a 2-D CNN, got input_shape {cfg.input_shape}")
    h = x.reshape(x.shape[0], *cfg.input_shape[:2], cfg.in_channels)  # (B, H, W, C)
    for i, pooled in enumerate(cfg.pooled_after()):
        p = params[f"conv_{i}"]
        h = lax.conv_general_dilated(
            h, p["w"], (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
        )
        h = jnp.maximum(h + p["b"], 0.0)
        if pooled:
            h = _max_pool(h, cfg.pool)
    return cnn_head(params, h)


def cnn_head(params, h):
    """The CNN's logits from its last feature map ``h`` ``(B, H, W, C)``: flattened, one ReLU
    dense layer, then the output layer."""
    h = jnp.maximum(_dense(params["dense_0"], h.reshape(h.shape[0], -1)), 0.0)
    return _dense(params["dense_1"], h)


def _layer_norm(p, x, eps=1e-5):
    mu = x.mean(-1, keepdims=True)
    var = jnp.square(x - mu).mean(-1, keepdims=True)
    return (x - mu) * lax.rsqrt(var + eps) * p["scale"] + p["bias"]


def _attention(p, x, heads, causal):
    b, t, d = x.shape
    q, k, v = (
        _dense(p[n], x).reshape(b, t, heads, d // heads).transpose(0, 2, 1, 3) for n in "qkv"
    )  # (B, H, T, Dh): heads in front of time, the faster layout for XLA's batched matmuls
    s = jnp.einsum("bhqd,bhkd->bhqk", q, k) / math.sqrt(d // heads)  # (B, H, T, T)
    if causal:
        s = jnp.where(jnp.tril(jnp.ones((t, t), bool)), s, -1e30)
    w = jax.nn.softmax(s, axis=-1)
    return _dense(p["out"], jnp.einsum("bhqk,bhkd->bqhd", w, v).reshape(b, t, d))


def _transformer(params, x, cfg):
    t = x.shape[1]
    h = params["embed"]["table"][x]  # (B, T, D)
    if cfg.positional == "learned":
        h = h + params["pos"]["table"][:t]
    elif cfg.positional == "sinusoidal":
        half = (cfg.dim + 1) // 2
        angles = np.arange(t)[:, None] / 10000.0 ** (2.0 * np.arange(half) / cfg.dim)
        table = np.stack([np.sin(angles), np.cos(angles)], -1).reshape(t, -1)[:, : cfg.dim]
        h = h + jnp.asarray(table, h.dtype)
    for i in range(cfg.num_layers):
        p = params[f"block_{i}"]
        h = h + _attention(
            p["attn"], _layer_norm(p["ln1"], h), cfg.num_heads, cfg.task == "language_model"
        )
        z = jax.nn.gelu(_dense(p["mlp"]["fc"], _layer_norm(p["ln2"], h)), approximate=False)
        h = h + _dense(p["mlp"]["proj"], z)
    h = _layer_norm(params["ln_f"], h)
    if cfg.task == "classification":
        h = h.mean(axis=1)
    return _dense(params["head"], h)


def _gru(params, x, cfg):
    if cfg.cell != "gru":
        raise ValueError(f"twins_jax: expected cell 'gru', got {cfg.cell!r}")
    h_seq = x.reshape(x.shape[0], *cfg.sequence_shape)  # (B, T, D)
    for i, width in enumerate(cfg.hidden):
        p = params[f"cell_{i}"]

        def body(h, x_t, p=p):  # the input projection inside the scan: faster on XLA's CPU
            x_r, x_z, x_n = jnp.split(_dense(p["input"], x_t), 3, axis=-1)
            h_r, h_z, h_n = jnp.split(_dense(p["hidden"], h), 3, axis=-1)
            r, z = jax.nn.sigmoid(x_r + h_r), jax.nn.sigmoid(x_z + h_z)
            h = (1.0 - z) * jnp.tanh(x_n + r * h_n) + z * h
            return h, h

        h0 = jnp.zeros((x.shape[0], width), x.dtype)
        h_last, ys = lax.scan(body, h0, jnp.moveaxis(h_seq, 1, 0))
        h_seq = jnp.moveaxis(ys, 0, 1)
    return _dense(params["head"], h_last)


_FORWARD = {"mlp": _mlp, "cnn": _cnn, "transformer": _transformer, "rnn": _gru}


def forward(name: str, params, x, cfg):
    """Logits of model ``name`` (``"mlp"``, ``"cnn"``, ``"transformer"``, ``"rnn"``)."""
    return _FORWARD[name](params, x, cfg)


def _cross_entropy(logits, y):
    logp = logits - jax.nn.logsumexp(logits, axis=-1, keepdims=True)
    return -jnp.take_along_axis(logp, y[..., None], axis=-1).mean()


def _adam(params, grads, m, v, t, lr, b1=0.9, b2=0.999, eps=1e-8):
    """Adam (Chapter 8): ``m <- b1 m + (1-b1) g``, ``v <- b2 v + (1-b2) g^2``, bias-corrected."""
    t = t + 1
    m = jax.tree.map(lambda m, g: b1 * m + (1 - b1) * g, m, grads)
    v = jax.tree.map(lambda v, g: b2 * v + (1 - b2) * g * g, v, grads)
    c1, c2 = 1 - b1**t, 1 - b2**t
    params = jax.tree.map(
        lambda p, m, v: p - lr * (m / c1) / (jnp.sqrt(v / c2) + eps), params, m, v
    )
    return params, m, v, t


def make_step(name: str, cfg, params, *, lr: float = 1e-3):
    """Return ``(step, state)``: ``step(state, x, y) -> (state, loss)`` jitted, state donated."""
    return adam_step(lambda p, x: forward(name, p, x, cfg), params, lr=lr)


def adam_step(logits, params, *, lr: float = 1e-3, compiler_options=None):
    """``(step, state)`` for any ``logits(params, x)``: the cross-entropy's gradient and an Adam
    update, jitted with ``compiler_options``; ``state`` starts from ``params`` (donated)."""

    def step(state, x, y):
        params, m, v, t = state
        loss, grads = jax.value_and_grad(lambda p: _cross_entropy(logits(p, x), y))(params)
        return _adam(params, grads, m, v, t, lr), loss

    zeros = jax.tree.map(jnp.zeros_like, params)
    state = (params, zeros, jax.tree.map(jnp.zeros_like, params), jnp.zeros((), jnp.float32))
    return jax.jit(step, donate_argnums=0, compiler_options=compiler_options), state
