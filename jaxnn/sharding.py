"""Sharded parameters and optimizer state — Chapter 15 beyond one device's memory.

On a mesh with an ``"fsdp"`` axis (:func:`jaxnn.parallel.parse_mesh`, ``--mesh data=2,fsdp=2``)
each large array of the train state is split along one of its dimensions over that axis, so each
device holds ``1/fsdp`` of it; the batch is split over every mesh axis. XLA gathers a weight
where the step uses it and reduce-scatters its gradient, and the optimizer updates each shard
where it lives. Which dimension is split is a rule over the leaf's shape:

**The rule** (:func:`fsdp_dim`): a leaf of at least ``min_size`` elements (default
:data:`MIN_SIZE`) is split along its largest dimension divisible by the fsdp size (the first
such, on a tie); a smaller leaf, or one with no divisible dimension, is replicated. Adam's moments
have their parameter's shape, so they are split as their parameter is. The step counter, the RNG
key and other small leaves stay replicated.

**Overrides**, per leaf: ``overrides`` maps ``fnmatch`` patterns over a leaf's ``/``-joined path
(``0/params/blocks/0/attn/wq``) to a dimension or ``None`` (replicate); a pattern also matches
any path that ends with it after a ``/``, so ``"embed/w"`` names the parameter and its moments
alike. The first matching pattern wins. ``rule``, a function ``(path, shape) -> dim or None``,
replaces the shape rule entirely. ``jaxnn train --shard-leaf 'PATTERN=DIM,...'`` (a
DIM or ``none`` each) gives overrides from the command line.

Per-device memory is measured, never assumed: :func:`device_bytes` sums the bytes of the shards
each device holds, read from the live arrays.
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Callable, Mapping

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from jaxnn.parallel import FSDP_AXIS

__all__ = [
    "MIN_SIZE",
    "fsdp_dim",
    "leaf_name",
    "parse_overrides",
    "partition_specs",
    "state_shardings",
    "place",
    "device_bytes",
    "step_jit_kwargs",
]

#: Leaves with fewer elements stay replicated: gathering them costs more than it saves.
MIN_SIZE = 1024


def fsdp_dim(shape: tuple[int, ...], fsdp: int, *, min_size: int = MIN_SIZE) -> int | None:
    """The dimension the shape rule splits over ``fsdp`` devices, or None (replicate).

    Args:
      shape: the leaf's shape.
      fsdp: the size of the mesh's ``"fsdp"`` axis.
      min_size: leaves with fewer elements are replicated.

    Returns:
      The largest dimension of ``shape`` divisible by ``fsdp`` (the first on a tie), or None for
      ``fsdp == 1``, a leaf under ``min_size`` elements, or no divisible dimension.
    """
    if fsdp <= 1 or math.prod(shape) < min_size:
        return None
    divisible = [(size, -i) for i, size in enumerate(shape) if size % fsdp == 0]
    return -max(divisible)[1] if divisible else None


def leaf_name(path) -> str:
    """A leaf's path as ``/``-joined keys: ``0/params/dense_0/w``."""
    parts = (getattr(k, "key", getattr(k, "idx", getattr(k, "name", k))) for k in path)
    return "/".join(str(p) for p in parts)


def parse_overrides(text: str) -> dict[str, int | None]:
    """``"embed/*=none,*/wq=1"`` -> ``{"embed/*": None, "*/wq": 1}`` (``--shard-leaf``).

    Raises:
      ValueError: for an item that is not ``PATTERN=DIM`` or ``PATTERN=none``.
    """
    out = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        pattern, eq, dim = str(item).partition("=")
        dim = dim.strip().lower()
        if not eq or not pattern or not (dim == "none" or dim.isdigit()):
            raise ValueError(f"parse_overrides: expected PATTERN=DIM or PATTERN=none, got {item!r}")
        out[pattern.strip()] = None if dim == "none" else int(dim)
    return out


def _matches(name: str, pattern: str) -> bool:
    return fnmatch.fnmatchcase(name, pattern) or fnmatch.fnmatchcase(name, "*/" + pattern)


def _choose(name, shape, fsdp, min_size, overrides, rule) -> int | None:
    for pattern, dim in (overrides or {}).items():
        if _matches(name, pattern):
            return dim
    if rule is not None:
        return rule(name, tuple(shape))
    return fsdp_dim(tuple(shape), fsdp, min_size=min_size)


def _spec(name: str, shape, fsdp: int, dim: int | None) -> PartitionSpec:
    if dim is None or fsdp <= 1:
        return PartitionSpec()
    if not (0 <= dim < len(shape)) or shape[dim] % fsdp:
        raise ValueError(
            f"partition_specs: expected leaf {name} {tuple(shape)} to have a dimension {dim} "
            f"divisible by fsdp={fsdp}; override it with another dimension or none"
        )
    return PartitionSpec(*([None] * dim), FSDP_AXIS)


def partition_specs(
    tree,
    mesh: Mesh,
    *,
    min_size: int = MIN_SIZE,
    overrides: Mapping[str, int | None] | None = None,
    rule: Callable[[str, tuple], int | None] | None = None,
):
    """The ``PartitionSpec`` of every leaf of ``tree`` on ``mesh`` by the module's rule.

    Args:
      tree: a pytree of arrays or ``jax.ShapeDtypeStruct`` s (a train state).
      mesh: the mesh; without an ``"fsdp"`` axis (or with size 1) every leaf is replicated.
      min_size: the shape rule's threshold (:func:`fsdp_dim`).
      overrides: ``{pattern: dim or None}`` per leaf path, checked first.
      rule: ``(path, shape) -> dim or None`` in place of the shape rule.

    Returns:
      A pytree of ``PartitionSpec`` with the structure of ``tree``.

    Raises:
      ValueError: when a chosen dimension does not exist or is not divisible by the fsdp size.
    """
    fsdp = dict(mesh.shape).get(FSDP_AXIS, 1)

    def spec(path, leaf):
        name, shape = leaf_name(path), np.shape(leaf)
        return _spec(name, shape, fsdp, _choose(name, shape, fsdp, min_size, overrides, rule))

    return jax.tree_util.tree_map_with_path(spec, tree)


def state_shardings(tree, mesh: Mesh, **rule):
    """The ``NamedSharding`` of every leaf of ``tree``: :func:`partition_specs` on ``mesh``
    (``rule`` takes its keyword arguments)."""
    specs = partition_specs(tree, mesh, **rule)
    return jax.tree.map(
        lambda s: NamedSharding(mesh, s), specs, is_leaf=lambda x: isinstance(x, PartitionSpec)
    )


def place(tree, shardings):
    """Put every leaf of ``tree`` (host or device arrays, the same on every process) on the
    devices its sharding names; each process builds only its own shards."""
    if jax.process_count() == 1:
        return jax.device_put(tree, shardings)

    def put(x, sharding):
        host = np.asarray(x)
        return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])

    return jax.tree.map(put, tree, shardings)


def device_bytes(tree) -> dict[int, int]:
    """``{device id: bytes}`` that this process's devices hold of ``tree``, summed over the live
    arrays' addressable shards (replicated leaves count on every device)."""
    out: dict[int, int] = {}
    for leaf in jax.tree.leaves(tree):
        for shard in leaf.addressable_shards:
            out[shard.device.id] = out.get(shard.device.id, 0) + shard.data.nbytes
    return out


def step_jit_kwargs(mesh: Mesh | None, state) -> dict:
    """``jax.jit`` keyword arguments for a step ``(state, ...) -> (state, metrics)`` on ``mesh``:
    the state comes back with the shardings it went in with, the metrics replicated; ``{}`` with
    no mesh."""
    if mesh is None:
        return {}
    shardings = jax.tree.map(lambda x: x.sharding, state)
    return {"out_shardings": (shardings, NamedSharding(mesh, PartitionSpec()))}
