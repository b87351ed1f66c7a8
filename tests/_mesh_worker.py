"""Worker for the mesh tests (4 fake CPU devices; XLA_FLAGS must be set before JAX starts).

Trains every built-in model for ``--steps`` steps three ways from the same initial state and
batches: on one device, on the mesh ``data=4`` and on ``data=2,fsdp=2``, with the placement and
jit arguments ``fit`` uses. Writes to ``--npz``, per model: the per-step losses and final params
of each run, the per-device bytes of params and optimizer state measured from the live arrays,
how many leaves the fsdp rule split and their bytes.

The optimizer is Adam with ``eps=1e-3``: with the default ``1e-8`` Adam turns the rounding noise
of a gradient that is zero in exact arithmetic (a conv bias before batch norm, an attention key
bias: the loss does not depend on them) into full-size steps of either sign, so those leaves
would differ between any two summation orders while every loss agrees.
"""

import argparse

import jax
import numpy as np
import optax

from jaxnn import models, parallel, sharding
from jaxnn.train.state import create_train_state
from jaxnn.train.step import make_train_step

CONFIGS = {
    "mlp": ({"input_dim": 32, "hidden": (64, 32), "num_classes": 4}, (32,), "classification"),
    "cnn": (
        {"input_shape": (8, 8, 2), "channels": (8, 16), "kernel_size": 3, "hidden": (32,),
         "num_classes": 4, "batch_norm": True, "dropout": 0.1},
        (8, 8, 2), "classification",
    ),
    "rnn": (
        {"input_shape": (12,), "chunk": 3, "cell": "gru", "hidden": (32, 32), "num_classes": 4},
        (12,), "classification",
    ),
    "transformer": (
        {"vocab_size": 16, "max_len": 8, "dim": 32, "num_heads": 2, "num_layers": 2,
         "dropout": 0.1},
        (8,), "language_model",
    ),
}  # fmt: skip
BATCH = 8


def batches(name, steps):
    fields, shape, task = CONFIGS[name]
    rng = np.random.default_rng(1)
    for _ in range(steps):
        if task == "language_model":
            ids = rng.integers(0, fields["vocab_size"], (BATCH, shape[0] + 1), dtype=np.int32)
            yield ids[:, :-1], ids[:, 1:]
        else:
            x = rng.standard_normal((BATCH, *shape), dtype=np.float32)
            yield x, rng.integers(0, fields["num_classes"], BATCH, dtype=np.int32)


def train(name, mesh, steps, min_size):
    fields, _, task = CONFIGS[name]
    model = models.build(name, **fields)
    tx = optax.adam(3e-3, eps=1e-3)
    state = create_train_state(model, tx, seed=0)
    kwargs, sharded, sharded_bytes = {}, 0, 0
    if mesh is not None:
        shardings = sharding.state_shardings(state, mesh, min_size=min_size)
        sharded = sum(bool(s.spec) for s in jax.tree.leaves(shardings))
        trained = (state.params, state.opt_state)
        split = jax.tree.leaves((shardings.params, shardings.opt_state))
        pairs = zip(jax.tree.leaves(trained), split, strict=True)
        sharded_bytes = sum(x.nbytes for x, s in pairs if s.spec)
        state = sharding.place(state, shardings)
        kwargs = sharding.step_jit_kwargs(mesh, state)
    step = jax.jit(make_train_step(model, tx, task=task, jitted=False), donate_argnums=0, **kwargs)
    memory = sharding.device_bytes((state.params, state.opt_state))
    losses = []
    for x, y in batches(name, steps):
        if mesh is not None:
            x, y = parallel.shard_batch((x, y), mesh)
        state, metrics = step(state, x, y)
        losses.append(metrics["loss"])
    after = sharding.device_bytes((state.params, state.opt_state))
    assert after == memory, f"{name}: the step changed the placement: {memory} -> {after}"
    params = [np.asarray(p) for p in jax.tree.leaves(parallel.to_host(state.params))]
    return np.asarray(losses), params, memory, (sharded, sharded_bytes)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--npz", required=True)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--min-size", type=int, default=256)
    parser.add_argument("--models", default=",".join(CONFIGS))
    args = parser.parse_args()
    meshes = {
        "one": None,
        "data4": parallel.make_named_mesh({"data": 4}),
        "fsdp": parallel.make_named_mesh(parallel.parse_mesh("data=2,fsdp=2")),
    }
    out = {}
    for name in args.models.split(","):
        for tag, mesh in meshes.items():
            losses, params, memory, sharded = train(name, mesh, args.steps, args.min_size)
            out[f"{name}/{tag}/losses"] = losses
            out[f"{name}/{tag}/bytes"] = np.asarray([memory[d] for d in sorted(memory)])
            out[f"{name}/{tag}/sharded"] = np.asarray(sharded[0])
            out[f"{name}/{tag}/sharded_bytes"] = np.asarray(sharded[1])
            for i, p in enumerate(params):
                out[f"{name}/{tag}/param{i}"] = p
    np.savez(args.npz, **out)


if __name__ == "__main__":
    main()
