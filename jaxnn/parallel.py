"""Data parallelism over many devices and hosts — Chapter 15 at scale.

The mesh has the axis ``"data"`` and, optionally, ``"fsdp"``. ``--devices N`` is the mesh
``data=N``: the batch is split across devices, parameters and optimizer state are replicated, and
XLA's SPMD partitioner turns the gradient into an all-reduce. ``--mesh data=2,fsdp=2`` adds the
second axis: the batch is split over both axes (every device computes its own rows) while the
large parameters and their optimizer moments are split along ``"fsdp"`` (:mod:`jaxnn.sharding`
holds the rule), so XLA gathers each weight where it is used and reduce-scatters its gradient.
The jitted train step is the same function on one CPU, eight GPUs or a TPU pod; only the
placement of its inputs changes.

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
    "FSDP_AXIS",
    "MESH_AXES",
    "make_mesh",
    "parse_mesh",
    "make_named_mesh",
    "mesh_for",
    "batch_axes",
    "batch_sharding",
    "replicate",
    "shard_batch",
    "process_slice",
    "to_host",
    "initialize_distributed",
]

DATA_AXIS = "data"
FSDP_AXIS = "fsdp"
MESH_AXES = (DATA_AXIS, FSDP_AXIS)  #: the named axes a mesh may have, outermost first


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


def parse_mesh(spec: str) -> dict[str, int]:
    """``"data=2,fsdp=2"`` -> ``{"data": 2, "fsdp": 2}``: the mesh's axis sizes, in
    :data:`MESH_AXES` order (an axis not named has size 1).

    Raises:
      ValueError: for an axis outside :data:`MESH_AXES`, an axis named twice, or a size that is
        not a positive integer.
    """
    name = "parse_mesh"
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"{name}: expected AXIS=SIZE,..., e.g. data=2,fsdp=2, got {spec!r}")
    sizes = {}
    for part in spec.split(","):
        axis, eq, size = part.strip().partition("=")
        if not eq or axis not in MESH_AXES or not size.isdigit() or int(size) <= 0:
            raise ValueError(
                f"{name}: expected AXIS=SIZE with AXIS in {', '.join(MESH_AXES)} and SIZE a "
                f"positive integer, got {part.strip()!r} in {spec!r}"
            )
        if axis in sizes:
            raise ValueError(f"{name}: expected each axis once, got {axis!r} twice in {spec!r}")
        sizes[axis] = int(size)
    return {axis: sizes.get(axis, 1) for axis in MESH_AXES}


def make_named_mesh(sizes: dict[str, int]) -> Mesh:
    """A ``("data", "fsdp")`` mesh of the given axis sizes over the first devices.

    Devices are laid out process-major, ``"fsdp"`` innermost: the devices that share one set of
    parameter shards are neighbours (on one host, when the fsdp size divides its device count).
    """
    shape = tuple(sizes.get(axis, 1) for axis in MESH_AXES)
    count = int(np.prod(shape))
    devices = jax.devices()
    if count > len(devices):
        raise ValueError(
            f"make_named_mesh: expected at most {len(devices)} devices "
            f"({jax.default_backend()}), got {count} ({_spelled(sizes)}); on CPU set "
            "XLA_FLAGS=--xla_force_host_platform_device_count=N"
        )
    if jax.process_count() > 1 and count != len(devices):
        raise ValueError(
            f"make_named_mesh: a multi-process run must use all {len(devices)} devices, got "
            f"{count} ({_spelled(sizes)})"
        )
    return Mesh(np.asarray(devices[:count]).reshape(shape), MESH_AXES)


def _spelled(sizes: dict[str, int]) -> str:
    return ",".join(f"{axis}={sizes.get(axis, 1)}" for axis in MESH_AXES)


def mesh_for(devices: int = 0, mesh: str = "") -> Mesh | None:
    """The mesh a run asks for: ``mesh`` (``"data=2,fsdp=2"``) if given, else ``devices``
    (``data=N``, the 1-D mesh of :func:`make_mesh`), else None (one device, no mesh) unless
    several processes run, which always shard over all their devices.

    Raises:
      ValueError: for a ``mesh`` :func:`parse_mesh` refuses, or ``devices`` that disagree with it.
    """
    if mesh:
        sizes = parse_mesh(mesh)
        if devices and devices != int(np.prod(list(sizes.values()))):
            raise ValueError(
                f"mesh_for: expected devices ({devices}) to equal the mesh's size, got mesh "
                f"{mesh!r}; give one of them"
            )
        return make_named_mesh(sizes)
    if devices or jax.process_count() > 1:
        return make_mesh(devices or None)
    return None


def batch_axes(mesh: Mesh) -> tuple[str, ...]:
    """The mesh axes a batch is split over: every one of :data:`MESH_AXES` the mesh has."""
    return tuple(axis for axis in MESH_AXES if axis in mesh.axis_names)


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
    """The sharding of a batch: axis 0 split over the mesh's ``"data"`` axis (and ``"fsdp"``,
    when the mesh has it: every device computes its own rows)."""
    axes = batch_axes(mesh)
    return NamedSharding(mesh, PartitionSpec(axes if len(axes) > 1 else axes[0]))


def shard_batch(batch, mesh: Mesh):
    """Split this process's rows of a batch along axis 0 over the mesh's batch axes.

    ``batch`` is a pytree of host arrays holding this process's rows (the whole batch when there is
    one process); the result is a pytree of global ``jax.Array``s.
    """
    sharding = batch_sharding(mesh)
    size = int(np.prod([mesh.shape[axis] for axis in batch_axes(mesh)]))

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
    """Fetch a pytree to NumPy in one transfer; across processes, a replicated leaf is read from
    this process's copy and a sharded one is gathered from every process (a collective: every
    process must call this with the same tree)."""
    leaves = jax.tree.leaves(tree)
    if all(not isinstance(x, jax.Array) or x.is_fully_addressable for x in leaves):
        return jax.tree.map(np.asarray, jax.device_get(tree))

    def get(x):
        if isinstance(x, jax.Array) and not x.is_fully_addressable:
            if x.is_fully_replicated:
                return np.asarray(x.addressable_data(0))
            from jax.experimental import multihost_utils

            return np.asarray(multihost_utils.process_allgather(x, tiled=True))
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
