"""Tiny configs of every built-in model variant, for the weight-export tests.

:func:`make` builds one with random params and state (batch-norm scales, shifts and running
statistics included, so a test that drops one of them fails) and a batch of inputs.
"""

from __future__ import annotations

import jax
import numpy as np

from jaxnn import models

VARIANTS = {
    "mlp": ("mlp", {"input_dim": 6, "hidden": (8, 5), "num_classes": 3}),
    "cnn_1d": (
        "cnn",
        {"input_shape": (12,), "channels": (3, 4), "kernel_size": 3, "hidden": (6,),
         "num_classes": 3},
    ),
    "cnn_2d_batch_norm": (
        "cnn",
        {"input_shape": (8, 8, 2), "channels": (3, 4), "kernel_size": 3, "hidden": (6, 5),
         "num_classes": 3, "batch_norm": True},
    ),
    "cnn_1d_batch_norm_no_hidden": (
        "cnn",
        {"input_shape": (9, 2), "channels": (3,), "kernel_size": 3, "hidden": (),
         "num_classes": 3, "batch_norm": True, "pool": 1},
    ),
    "rnn_gru": ("rnn", {"input_shape": (12,), "chunk": 3, "cell": "gru", "hidden": (5, 5)}),
    "rnn_lstm": ("rnn", {"input_shape": (4, 3), "cell": "lstm", "hidden": (5, 5)}),
    "rnn_elman": ("rnn", {"input_shape": (4, 3), "cell": "rnn", "hidden": (6,)}),
    "transformer_lm": (
        "transformer",
        {"vocab_size": 11, "max_len": 8, "dim": 8, "num_heads": 2, "num_layers": 2},
    ),
    "transformer_classifier": (
        "transformer",
        {"vocab_size": 11, "max_len": 8, "dim": 8, "num_heads": 2, "num_layers": 1,
         "task": "classification", "num_classes": 3, "positional": "learned"},
    ),
    "transformer_lm_no_positions": (
        "transformer",
        {"vocab_size": 11, "max_len": 6, "dim": 4, "num_heads": 1, "num_layers": 1,
         "positional": "none"},
    ),
    "transformer_lm_nanogpt": (
        "transformer",
        {"vocab_size": 11, "max_len": 8, "dim": 8, "num_heads": 2, "num_layers": 2,
         "positional": "learned", "bias": False, "tie_embeddings": True},
    ),
    "transformer_lm_tied": (
        "transformer",
        {"vocab_size": 11, "max_len": 8, "dim": 8, "num_heads": 2, "num_layers": 1,
         "tie_embeddings": True},
    ),
}  # fmt: skip


def make(variant: str, *, batch: int = 3, seed: int = 0):
    """``(model, params, state, x)`` for ``variant``, drawn with NumPy (no compile): params
    ``N(0, 0.5^2)``, running means ``N(0, 1)``, variances ``exp(N(0, 0.3^2))``; ``x`` is float32,
    or int32 token ids for the transformer."""
    name, fields = VARIANTS[variant]
    model = models.build(name, **fields)
    rng = np.random.default_rng(seed)
    shapes = jax.eval_shape(model.init, jax.random.key(0))
    draw = lambda spec, f: f(spec.shape).astype(spec.dtype)
    params = jax.tree.map(lambda a: draw(a, lambda s: 0.5 * rng.standard_normal(s)), shapes[0])
    state = {
        layer: {
            "mean": draw(stats["mean"], rng.standard_normal),
            "var": draw(stats["var"], lambda s: np.exp(0.3 * rng.standard_normal(s))),
        }
        for layer, stats in shapes[1].items()
    }
    cfg = model.cfg
    if name == "transformer":
        x = rng.integers(0, cfg.vocab_size, (batch, cfg.max_len), dtype=np.int32)
    else:
        shape = (cfg.input_dim,) if name == "mlp" else cfg.input_shape
        x = rng.standard_normal((batch, *shape)).astype(np.float32)
    return model, params, state, x
