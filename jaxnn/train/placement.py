"""Where a run's arrays live — Chapter 15 at scale: the mesh, the train state's shardings, and
the jit arguments that keep them.

:func:`jaxnn.train.fit` asks this module three things: the mesh the settings name
(``--devices N`` is ``data=N``; ``--mesh data=2,fsdp=2`` adds the parameter axis), how to put the
train state on it (replicated on ``data``, split along ``fsdp`` by :mod:`jaxnn.sharding`'s rule
and the run's ``--shard-leaf`` overrides), and the ``out_shardings`` that make the jitted step
return the state exactly as it was placed.
"""

from __future__ import annotations

from jaxnn import parallel, sharding
from jaxnn.errors import UserError
from jaxnn.train.config import Execution

__all__ = ["mesh_of", "place_state", "jit_kwargs"]


def mesh_of(run: Execution):
    """The device mesh of ``run`` (``mesh``, or ``devices`` as ``data=N``), or None (one device).

    Raises:
      UserError: when the mesh needs more devices than there are (or, across processes, not all).
    """
    try:
        return parallel.mesh_for(run.devices, run.mesh)
    except ValueError as err:
        raise UserError(f"fit: {err}") from None


def place_state(tree, mesh, run: Execution):
    """``tree`` (the train state and the best pair) on ``mesh``: each leaf replicated, or split
    along ``fsdp`` by :func:`jaxnn.sharding.partition_specs` with the run's overrides."""
    if mesh is None:
        return tree
    overrides = sharding.parse_overrides(run.shard_leaf)
    try:
        shardings = sharding.state_shardings(tree, mesh, overrides=overrides)
    except ValueError as err:
        raise UserError(f"fit: --shard-leaf: {err}") from None
    return sharding.place(tree, shardings)


def jit_kwargs(mesh, state) -> dict:
    """The ``jax.jit`` keywords that return ``state`` with its own shardings (``{}``: no mesh)."""
    return sharding.step_jit_kwargs(mesh, state) if mesh is not None else {}
