"""Flax nnx twins of the jaxnn models, for ``jaxnn bench``.

Same layer sizes and math as the jaxnn models (ReLU MLP; SAME convolutions with ReLU and max
pooling, then a dense head; pre-norm causal Transformer with exact GELU; GRU with a dense head),
written the way an nnx user would, trained with ``nnx.Optimizer(optax.adam)``. The step is the
functional nnx pattern (``nnx.split`` once, ``nnx.merge`` inside one ``jax.jit``), the fastest way
to run an nnx model.

Importing this module needs Flax.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

__all__ = ["build", "make_step"]


class MLP(nnx.Module):
    def __init__(self, cfg, rngs):
        sizes = (cfg.input_dim, *cfg.hidden, cfg.num_classes)
        self.layers = nnx.List(
            [nnx.Linear(a, b, rngs=rngs) for a, b in zip(sizes[:-1], sizes[1:], strict=True)]
        )

    def __call__(self, x):
        h = x.reshape(x.shape[0], -1)
        for layer in self.layers[:-1]:
            h = jax.nn.relu(layer(h))
        return self.layers[-1](h)


class CNN(nnx.Module):
    def __init__(self, cfg, rngs):
        self.cfg = cfg
        chans = (cfg.in_channels, *cfg.channels)
        k = (cfg.kernel_size, cfg.kernel_size)
        pairs = zip(chans[:-1], chans[1:], strict=True)
        self.convs = nnx.List([nnx.Conv(a, b, k, padding="SAME", rngs=rngs) for a, b in pairs])
        (width,) = cfg.hidden  # the twin has one dense hidden layer
        self.fc = nnx.Linear(math.prod(cfg.feature_shape), width, rngs=rngs)
        self.out = nnx.Linear(width, cfg.num_classes, rngs=rngs)

    def __call__(self, x):
        cfg = self.cfg
        h = x.reshape(x.shape[0], *cfg.input_shape[:2], cfg.in_channels)
        for conv, pooled in zip(self.convs, cfg.pooled_after(), strict=True):
            h = jax.nn.relu(conv(h))
            if pooled:
                h = nnx.max_pool(h, (cfg.pool, cfg.pool), strides=(cfg.pool, cfg.pool))
        return self.out(jax.nn.relu(self.fc(h.reshape(h.shape[0], -1))))


class Block(nnx.Module):
    def __init__(self, cfg, rngs):
        d = cfg.dim
        self.heads, self.causal = cfg.num_heads, cfg.task == "language_model"
        self.ln1, self.ln2 = nnx.LayerNorm(d, rngs=rngs), nnx.LayerNorm(d, rngs=rngs)
        self.q, self.k, self.v, self.o = (nnx.Linear(d, d, rngs=rngs) for _ in range(4))
        self.fc = nnx.Linear(d, cfg.mlp_ratio * d, rngs=rngs)
        self.proj = nnx.Linear(cfg.mlp_ratio * d, d, rngs=rngs)

    def __call__(self, x):
        b, t, d = x.shape
        h = self.ln1(x)
        q, k, v = (f(h).reshape(b, t, self.heads, -1) for f in (self.q, self.k, self.v))
        mask = jnp.tril(jnp.ones((t, t), bool)) if self.causal else None
        a = nnx.dot_product_attention(q, k, v, mask=mask)  # (B, T, H, Dh)
        x = x + self.o(a.reshape(b, t, d))
        return x + self.proj(jax.nn.gelu(self.fc(self.ln2(x)), approximate=False))


class Transformer(nnx.Module):
    def __init__(self, cfg, rngs):
        self.cfg = cfg
        self.embed = nnx.Embed(cfg.vocab_size, cfg.dim, rngs=rngs)
        if cfg.positional == "learned":
            self.pos = nnx.Param(jax.random.normal(rngs.params(), (cfg.max_len, cfg.dim)))
        half = (cfg.dim + 1) // 2
        angles = np.arange(cfg.max_len)[:, None] / 10000.0 ** (2.0 * np.arange(half) / cfg.dim)
        table = np.stack([np.sin(angles), np.cos(angles)], -1).reshape(cfg.max_len, -1)
        self.table = jnp.asarray(table[:, : cfg.dim], jnp.float32)  # a constant, not a param
        self.blocks = nnx.List([Block(cfg, rngs) for _ in range(cfg.num_layers)])
        self.ln_f = nnx.LayerNorm(cfg.dim, rngs=rngs)
        self.head = nnx.Linear(cfg.dim, cfg.out_dim, rngs=rngs)

    def __call__(self, x):
        t = x.shape[1]
        h = self.embed(x)
        if self.cfg.positional == "learned":
            h = h + self.pos[:t]
        elif self.cfg.positional == "sinusoidal":
            h = h + self.table[:t]
        for block in self.blocks:
            h = block(h)
        h = self.ln_f(h)
        return self.head(h.mean(axis=1) if self.cfg.task == "classification" else h)


class GRU(nnx.Module):
    def __init__(self, cfg, rngs):
        self.cfg = cfg
        steps, features = cfg.sequence_shape
        (width,) = cfg.hidden  # the twin has one recurrent layer
        self.rnn = nnx.RNN(nnx.GRUCell(features, width, rngs=rngs), return_carry=True)
        self.head = nnx.Linear(width, cfg.num_classes, rngs=rngs)

    def __call__(self, x):
        h_last, _ = self.rnn(x.reshape(x.shape[0], *self.cfg.sequence_shape))
        return self.head(h_last)


_MODELS = {"mlp": MLP, "cnn": CNN, "transformer": Transformer, "rnn": GRU}


def build(name: str, cfg, seed: int = 0) -> nnx.Module:
    """The nnx twin of jaxnn model ``name`` with config ``cfg``."""
    return _MODELS[name](cfg, nnx.Rngs(seed))


def make_step(name: str, cfg, *, lr: float = 1e-3, seed: int = 0):
    """Return ``(step, state)``: ``step(state, x, y) -> (state, loss)`` jitted, state donated."""
    model = build(name, cfg, seed)
    opt = nnx.Optimizer(model, optax.adam(lr), wrt=nnx.Param)
    graphdef, state = nnx.split((model, opt))

    def step(state, x, y):
        model, opt = nnx.merge(graphdef, state)

        def loss_fn(model):
            logits = model(x)
            return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

        loss, grads = nnx.value_and_grad(loss_fn)(model)
        opt.update(model, grads)
        return nnx.state((model, opt)), loss

    return jax.jit(step, donate_argnums=0), state
