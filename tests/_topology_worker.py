"""Worker for the checkpoint-topology tests (4 fake CPU devices; XLA_FLAGS set by the test).

Saves a train state sharded on one mesh and restores it onto others with
:class:`jaxnn.train.checkpoint.CheckpointManager`; prints one JSON line per restore: the mesh
it was saved on and restored onto, whether every value came back, whether every leaf has the
target's sharding, and the largest per-device bytes.
"""

import json
import sys

import jax
import numpy as np
import optax

from jaxnn import models, parallel, sharding
from jaxnn.train.checkpoint import CheckpointManager
from jaxnn.train.state import create_train_state

MESHES = {"one": None, "data=4": "data=4", "data=2,fsdp=2": "data=2,fsdp=2"}


def make_state(mesh):
    model = models.build("mlp", input_dim=64, hidden=(128,), num_classes=10)
    state = create_train_state(model, optax.adam(1e-3), seed=3)
    state = jax.tree.map(lambda x: x + 1 if x.dtype == np.float32 else x, state)  # not zeros
    if mesh is None:
        return state
    return sharding.place(state, sharding.state_shardings(state, mesh))


def main(directory: str) -> None:
    pairs = [("data=2,fsdp=2", "one"), ("data=2,fsdp=2", "data=4"), ("one", "data=2,fsdp=2")]
    for i, (saved_on, restored_on) in enumerate(pairs):
        meshes = {
            k: v and parallel.make_named_mesh(parallel.parse_mesh(v)) for k, v in MESHES.items()
        }
        source = make_state(meshes[saved_on])
        with CheckpointManager(f"{directory}/{i}", run_id="r") as manager:
            manager.save(1, source, extra={"epoch": 1})
            target = make_state(meshes[restored_on])
            target = jax.tree.map(lambda x: x * 0, target)  # what restore must overwrite
            want = [x.sharding for x in jax.tree.leaves(target)]
            restored, extra = manager.restore(target=target, expected_run_id="r")
        leaves = jax.tree.leaves(restored)
        same = all(
            np.array_equal(np.asarray(a), np.asarray(b))
            for a, b in zip(leaves, jax.tree.leaves(source), strict=True)
        )
        placed = all(
            x.sharding.is_equivalent_to(s, x.ndim) for x, s in zip(leaves, want, strict=True)
        )
        held = sharding.device_bytes((restored.params, restored.opt_state))
        row = {"saved_on": saved_on, "restored_on": restored_on, "same_values": same,
               "target_sharding": placed, "max_device_bytes": max(held.values()),
               "devices": len(held), "extra": extra}  # fmt: skip
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
