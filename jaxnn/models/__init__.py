"""Models built from :mod:`jaxnn.layers`: ``mlp``, ``cnn``, ``rnn``, ``transformer``.

Each model module has a frozen ``Config`` dataclass, ``init(key, cfg) -> params`` (a plain dict
pytree) and ``apply(params, x, *, cfg=None, train=False, key=None) -> logits``. The static
hyperparameters (activation, heads, dropout rate) live in ``cfg``, never in the params pytree, so
optax and orbax see arrays only.

A module whose model carries non-trained state (batch-norm running statistics) also defines
``init_state(cfg) -> state`` and then its ``apply`` takes ``state=`` and returns
``(logits, new_state)``.

:func:`build` wraps any of them into one uniform :class:`Model` for the training loop:
``init(key) -> (params, state)`` and ``apply(params, state, x, *, train, key) -> (logits, state)``.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable
from typing import Any

import jax
import numpy as np

__all__ = [
    "Model",
    "build",
    "get_module",
    "param_count",
    "config_from_info",
    "dropout_active",
    "NAMES",
]

NAMES = ("mlp", "cnn", "rnn", "transformer")


@dataclasses.dataclass(frozen=True)
class Model:
    """A model as the training loop sees it: two pure functions and the config that made them."""

    name: str
    cfg: Any
    init: Callable[..., tuple[Any, Any]]
    apply: Callable[..., tuple[Any, Any]]
    cpu_library_fusion: bool = True  # see jaxnn.train.step.jit; a module opts out by a constant


def get_module(name: str):
    """Return the model module ``jaxnn.models.<name>``; unknown names list the valid ones."""
    if name not in NAMES:
        raise ValueError(f"unknown model {name!r}; expected one of {', '.join(NAMES)}")
    return importlib.import_module(f"jaxnn.models.{name}")


def build(name: str, cfg=None, **overrides) -> Model:
    """Wrap model ``name`` with config ``cfg`` (default ``Config()``, then ``overrides``)."""
    module = get_module(name)
    cfg = module.Config() if cfg is None else cfg
    if overrides:
        cfg = dataclasses.replace(cfg, **overrides)
    stateful = hasattr(module, "init_state")

    def init(key):
        return module.init(key, cfg), (module.init_state(cfg) if stateful else {})

    def apply(params, state, x, *, train=False, key=None):
        if stateful:
            return module.apply(params, x, cfg=cfg, train=train, key=key, state=state)
        return module.apply(params, x, cfg=cfg, train=train, key=key), state

    fusion = getattr(module, "CPU_LIBRARY_FUSION", True)
    return Model(name=name, cfg=cfg, init=init, apply=apply, cpu_library_fusion=fusion)


def param_count(params) -> int:
    """Number of trainable scalars in a params pytree (Chapter 10: the parameter count).

    A dense layer costs ``in * out + out``; a convolution ``k^d * C_in * C_out + C_out`` whatever
    the image size, so most of a small CNN's parameters sit in its dense head.
    """
    return sum(int(np.size(leaf)) for leaf in jax.tree_util.tree_leaves(params))


def config_from_info(
    name: str, config_cls, info, values, overrides: dict, *, needs=("input_shape", "num_classes")
):
    """Build ``config_cls`` from a dataset info: ``values(info)`` fills the data-dependent fields,
    ``overrides`` (checked against the dataclass fields) take precedence.

    Raises:
      ValueError: if ``info`` lacks an attribute in ``needs`` or an override is not a field.
    """
    missing = [a for a in needs if not hasattr(info, a)]
    if missing:
        raise ValueError(
            f"{name}: expected a dataset info with {', '.join(needs)}, "
            f"got {type(info).__name__} without {', '.join(missing)}"
        )
    fields = {f.name for f in dataclasses.fields(config_cls)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise ValueError(f"{name}: expected fields from {sorted(fields)}, got {unknown}")
    return config_cls(**{**values(info), **overrides})


def dropout_active(name: str, rate: float, train: bool, key) -> bool:
    """Whether a model's dropout runs (``train`` and ``rate > 0``); then a ``key`` is required.

    Chapter 13: dropout masks activations during training only.

    Raises:
      ValueError: if dropout is active and ``key`` is None.
    """
    active = bool(train) and rate > 0.0
    if active and key is None:
        raise ValueError(
            f"{name}: expected a PRNG key for dropout (train=True, dropout={rate}), got key=None"
        )
    return active
