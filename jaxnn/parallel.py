"""Data parallelism over many devices and hosts — Chapter 15 at scale.

One mesh axis, ``"data"``: the batch is split across devices, parameters and optimizer state are
replicated, and XLA's SPMD partitioner turns the gradient into an all-reduce. The jitted train step
is the same function on one CPU, eight GPUs or a TPU pod; only the placement of its inputs changes.

Multi-host runs (several processes, each with its own devices) go through ``jax.distributed``: every
process runs the same program, feeds its own slice of each global batch, and
``jax.make_array_from_process_local_data`` assembles the global array.
"""

from __future__ import annotations

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

__all__ = [
    "DATA_AXIS",
    "make_mesh",
    "replicate",
    "shard_batch",
    "process_slice",
    "to_host",
    "initialize_distributed",
]

DATA_AXIS = "data"


def make_mesh(num_devices: int | None = None) -> Mesh:
    """A 1-D ``("data",)`` mesh over the first ``num_devices`` devices (all when ``None``)."""
    devices = jax.devices()
    if num_devices is None:
        num_devices = len(devices)
    if isinstance(num_devices, bool) or not isinstance(num_devices, int) or num_devices <= 0:
        raise ValueError(f"make_mesh: expected a positive device count, got {num_devices!r}")
    if num_devices > len(devices):
        raise ValueError(
            f"make_mesh: expected at most {len(devices)} devices ({jax.default_backend()}), "
            f"got {num_devices}; on CPU set XLA_FLAGS=--xla_force_host_platform_device_count=N"
        )
    if jax.process_count() > 1 and num_devices != len(devices):
        raise ValueError(
            f"make_mesh: a multi-process run must use all {len(devices)} devices, got {num_devices}"
        )
    return Mesh(np.asarray(devices[:num_devices]), (DATA_AXIS,))


def replicate(tree, mesh: Mesh):
    """Place every leaf of ``tree`` on all devices of ``mesh`` (parameters, optimizer state)."""
    sharding = NamedSharding(mesh, PartitionSpec())
    if jax.process_count() == 1:
        return jax.device_put(tree, sharding)
    return jax.tree.map(
        lambda x: jax.make_array_from_process_local_data(sharding, np.asarray(x)), tree
    )


def process_slice(global_batch_size: int) -> slice:
    """The rows of each global batch that this process feeds."""
    n = jax.process_count()
    if global_batch_size % n:
        raise ValueError(
            f"process_slice: expected a global batch size divisible by {n} processes, "
            f"got {global_batch_size}"
        )
    per = global_batch_size // n
    return slice(jax.process_index() * per, (jax.process_index() + 1) * per)


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """The sharding of a batch: axis 0 split over the mesh's ``"data"`` axis."""
    return NamedSharding(mesh, PartitionSpec(DATA_AXIS))


def shard_batch(batch, mesh: Mesh):
    """Split this process's rows of a batch along axis 0 over the mesh's ``"data"`` axis.

    ``batch`` is a pytree of host arrays holding this process's rows (the whole batch when there is
    one process); the result is a pytree of global ``jax.Array``s.
    """
    sharding = batch_sharding(mesh)
    size = mesh.shape[DATA_AXIS]

    def put(x):
        x = np.asarray(x)
        if (x.shape[0] * jax.process_count()) % size:
            raise ValueError(
                f"shard_batch: expected a global batch divisible by {size} devices, got "
                f"{x.shape[0] * jax.process_count()} rows"
            )
        return jax.make_array_from_process_local_data(sharding, x)

    return jax.tree.map(put, batch)


def to_host(tree):
    """Fetch a pytree to NumPy in one transfer; across processes, replicated leaves only."""
    leaves = jax.tree.leaves(tree)
    if all(not isinstance(x, jax.Array) or x.is_fully_addressable for x in leaves):
        return jax.tree.map(np.asarray, jax.device_get(tree))

    def get(x):
        if isinstance(x, jax.Array) and not x.is_fully_addressable:
            return np.asarray(x.addressable_data(0))
        return np.asarray(jax.device_get(x))

    return jax.tree.map(get, tree)


def initialize_distributed(coordinator_address: str, num_processes: int, process_id: int) -> None:
    """Join a multi-process JAX cluster (call before any other JAX work).

    On CPU, cross-process collectives need gloo, which this switches on. On GPU and TPU clusters
    ``jax.distributed.initialize()`` with no arguments usually discovers everything by itself.
    """
    if num_processes <= 0 or not 0 <= process_id < num_processes:
        raise ValueError(
            f"initialize_distributed: expected 0 <= process_id < num_processes, got "
            f"process_id={process_id}, num_processes={num_processes}"
        )
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(
        coordinator_address=coordinator_address,
        num_processes=num_processes,
        process_id=process_id,
    )
