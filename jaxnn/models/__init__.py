"""Models built from :mod:`jaxnn.layers`: ``mlp``, ``cnn``, ``rnn``, ``transformer``.

Every model module has the same contract:

- ``Config``: a frozen dataclass of static hyperparameters (never in the params pytree, so optax
  and orbax see arrays only). ``hidden``, where a model has it, is a tuple of hidden widths.
- ``init(key, cfg) -> params``: a plain dict pytree.
- ``init_state(cfg) -> state``: the non-trained state (batch-norm running statistics), ``{}`` for
  a model that has none.
- ``apply(params, x, *, cfg, state=None, train=False, key=None) -> (outputs, new_state)``.

The state rule is one for every model and for :func:`jaxnn.layers.batch_norm`: state goes in as
the keyword ``state=`` and comes back as the second element of the result. ``cfg`` is required:
there is no silent default config. A stateless model accepts ``state=None`` (or ``{}``) and returns
``{}``; a stateful one requires the state from ``init_state(cfg)``.
The transformer also has ``generate(params, prompt, *, cfg, key, length, temperature)``.

:func:`build` binds a module to its config for the training loop: ``init(key) -> (params,
state)`` and ``apply`` is the module's own ``apply`` with ``cfg`` filled in.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any

import jax

from jaxnn.models import cnn, mlp, rnn, transformer
from jaxnn.models._common import param_count

__all__ = ["Model", "NAMES", "build", "get", "param_count", "recipe"]

_REGISTRY = {"mlp": mlp, "cnn": cnn, "rnn": rnn, "transformer": transformer}
NAMES = tuple(_REGISTRY)


@dataclasses.dataclass(frozen=True)
class Model:
    """A model bound to its config: ``init(key) -> (params, state)`` and
    ``apply(params, x, *, state=None, train=False, key=None) -> (outputs, new_state)``."""

    name: str
    cfg: Any
    init: Callable[..., tuple[Any, Any]]
    apply: Callable[..., tuple[Any, Any]]
    cpu_library_fusion: bool = True  # see jaxnn.train.step.jit; a module opts out by a constant


def get(name: str):
    """The model module ``name`` (one of :data:`NAMES`).

    Raises:
      ValueError: for an unknown name; the message lists :data:`NAMES`.
    """
    if name not in _REGISTRY:
        raise ValueError(f"unknown model {name!r}; expected one of {', '.join(NAMES)}")
    return _REGISTRY[name]


def build(name: str, info_or_cfg=None, **overrides) -> Model:
    """Bind model ``name`` to a config.

    Args:
      name: one of :data:`NAMES`.
      info_or_cfg: the module's ``Config`` (``overrides`` replace its fields), a dataset info
        (``module.config_for(info, **overrides)`` sizes the model for it), or ``None``
        (``Config(**overrides)``).
      **overrides: config fields.

    Returns:
      The :class:`Model`.
    """
    module = get(name)
    if isinstance(info_or_cfg, module.Config):
        cfg = dataclasses.replace(info_or_cfg, **overrides) if overrides else info_or_cfg
    elif info_or_cfg is None:
        cfg = module.Config(**overrides)
    else:
        cfg = module.config_for(info_or_cfg, **overrides)

    try:
        init = _compiled_init(name, cfg)
    except TypeError:  # a config with an unhashable field: compile for this Model only
        init = _compiled_init.__wrapped__(name, cfg)
    fusion = getattr(module, "CPU_LIBRARY_FUSION", True)
    apply = functools.partial(module.apply, cfg=cfg)
    return Model(name=name, cfg=cfg, init=init, apply=apply, cpu_library_fusion=fusion)


# Initializers run once per run, so their compile time is the wait: compiled as one program at
# XLA's backend optimization level 1 without the CPU fusion emitters they give the bits of the
# module's init called outside jit (a test checks every model) and compile about 3x sooner than
# with XLA's defaults (threefry's unrolled rounds dominate; `jaxnn bench` reports setup_s).
_INIT_COMPILER_OPTIONS = {"xla_backend_optimization_level": 1, "xla_cpu_use_fusion_emitters": False}


@functools.cache
def init_compiler_options() -> dict | None:
    """XLA compiler options for programs that initialize params (see :func:`build`), or None
    (off CPU, or where this jaxlib does not know the options)."""
    if jax.default_backend() != "cpu":
        return None
    try:
        jax.jit(lambda x: x + 1, compiler_options=_INIT_COMPILER_OPTIONS).lower(0.0).compile()
    except Exception:  # noqa: BLE001 - an older XLA without these options: its defaults
        return None
    return dict(_INIT_COMPILER_OPTIONS)


@functools.lru_cache(maxsize=256)
def _compiled_init(name: str, cfg) -> Callable:
    """``key -> (params, state)`` for ``cfg``, jitted (one compile per model config and process)."""
    module = get(name)

    def plain(key):
        return module.init(key, cfg), module.init_state(cfg)

    compiled = jax.jit(plain, compiler_options=init_compiler_options())
    return lambda key: call_top_level(compiled, plain, key)


def call_top_level(compiled: Callable, plain: Callable, *args):
    """``compiled(*args)``, a jit with compiler options, or ``plain(*args)`` inside another trace
    (``jit``, ``eval_shape``, ...), where JAX allows compiler options on the top-level jit only."""
    if any(isinstance(a, jax.core.Tracer) for a in jax.tree.leaves(args)):
        return plain(*args)
    try:
        return compiled(*args)
    except ValueError as err:
        if "compiler_options" not in str(err):
            raise
        return plain(*args)


def recipe(name: str, dataset: str) -> dict:
    """The training recipe model ``name`` carries for ``dataset`` (``{}`` if none).

    A recipe holds :class:`jaxnn.train.FitConfig` fields and, under ``"model_config"``, config
    fields: the settings measured to reach the model's known accuracy on that dataset. ``jaxnn
    train`` starts from it; flags override it.
    """
    return dict(getattr(get(name), "RECIPES", {}).get(dataset, {}))
