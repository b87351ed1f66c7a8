"""The train state — Chapter 15: everything a run needs to continue exactly where it stopped.

``TrainState`` is a NamedTuple, hence a pytree: ``jax.jit``, optax and orbax take it as it is. The
random key is stored as raw ``uint32`` key data so that a checkpoint is plain arrays; the key of
step ``t`` is ``fold_in(rng, t)``, so a resumed run draws the same numbers as an uninterrupted one.
"""

from __future__ import annotations

import hashlib
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxnn import _xla
from jaxnn.parallel import to_host

__all__ = ["TrainState", "create_train_state", "params_sha256", "step_key"]


class TrainState(NamedTuple):
    """Step counter, parameters, optimizer state, base RNG key data and model state."""

    step: jax.Array  # () int32: number of updates applied so far
    params: Any  # plain dict pytree
    opt_state: Any  # optax state
    rng: jax.Array  # (2,) uint32: base key data; the step key is fold_in(rng, step)
    model_state: Any  # non-trained state such as batch-norm running statistics ({} if none)


def create_train_state(model, tx, seed: int) -> TrainState:
    """Initialise a :class:`TrainState` for a :class:`jaxnn.models.Model` and optimizer ``tx``.

    The parameter key and the base step key are both derived from ``seed``, so the same seed gives
    the same run.
    """

    def create():  # the seed is closed over: a Python int of any size, as jax.random.PRNGKey takes
        init_key, base_key = jax.random.split(jax.random.PRNGKey(seed))
        params, model_state = model.init(init_key)
        return TrainState(
            step=jnp.zeros((), jnp.int32),
            params=params,
            opt_state=tx.init(params),
            rng=base_key,
            model_state=model_state,
        )

    # One program instead of one per op: the first step of a run comes sooner (jaxnn._xla).
    return _xla.call_top_level(_xla.jit(create, kind="init"), create)


def step_key(state: TrainState) -> jax.Array:
    """The PRNG key of the current step: ``fold_in(state.rng, state.step)``."""
    return jax.random.fold_in(state.rng, state.step)


def params_sha256(params) -> str:
    """A sha256 over every leaf's path, dtype, shape and bytes: equal hash, bitwise-equal params."""
    digest = hashlib.sha256()
    leaves, _ = jax.tree_util.tree_flatten_with_path(to_host(params))  # one transfer
    for path, arr in leaves:
        digest.update(jax.tree_util.keystr(path).encode())
        digest.update(str(arr.dtype).encode() + str(arr.shape).encode())
        digest.update(np.ascontiguousarray(arr).tobytes())
    return digest.hexdigest()
