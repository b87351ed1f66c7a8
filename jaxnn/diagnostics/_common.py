"""Helpers shared by the detector modules (imported by them, never by the package's users).

Kept apart from :mod:`jaxnn.diagnostics` so that the detector modules import no code back from
their own package: the package imports the modules, the modules import this file.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np


def flat_examples(x, limit: int) -> np.ndarray:
    """The first ``limit`` examples of ``x`` as float32 rows (n, F)."""
    return np.asarray(x[:limit], np.float32).reshape(min(len(x), limit), -1)


def nearest(queries: np.ndarray, refs: np.ndarray, k: int, chunk: int = 512):
    """Indices (Q, k) and squared distances (Q, k) of each query's k nearest references."""
    r = jnp.asarray(refs)
    r2 = jnp.sum(r * r, axis=1)  # (R,)
    idx, dist = [], []
    for start in range(0, len(queries), chunk):
        q = jnp.asarray(queries[start : start + chunk])  # (q, F)
        d = jnp.sum(q * q, axis=1)[:, None] - 2 * q @ r.T + r2[None, :]  # (q, R)
        neg, i = jax.lax.top_k(-d, k)
        idx.append(np.asarray(i))
        dist.append(np.maximum(-np.asarray(neg), 0.0))
    return np.concatenate(idx), np.concatenate(dist)


def default_state(model, model_state):
    """``model_state``, or ``model.init``'s (fresh batch-norm statistics) when it is ``None``."""
    if model_state is not None:
        return model_state
    return model.init(jax.random.key(0))[1]


def unrolled(model):
    """``model`` with ``remat`` off: the same outputs and gradients, and its layers one by one in
    the jaxpr (with ``remat`` they run inside a ``lax.scan``, which the interpreter does not
    enter).
    """
    cfg = getattr(model, "cfg", None)
    if not getattr(cfg, "remat", False):
        return model
    from jaxnn import models

    return models.build(model.name, dataclasses.replace(cfg, remat=False))


def default_loss(task: str):
    """The training loss of ``task`` per example: ``(outputs, y) -> (N,)``."""
    from jaxnn.train.step import per_example_metrics

    return lambda outputs, y: per_example_metrics(task, outputs, y)[0]
