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

from jaxnn import _xla
from jaxnn.models import cnn, mlp, rnn, transformer
from jaxnn.models._common import param_count

__all__ = ["Model", "NAMES", "build", "get", "param_count"]

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
    apply = functools.partial(module.apply, cfg=cfg)
    return Model(name=name, cfg=cfg, init=init, apply=apply)


@functools.lru_cache(maxsize=256)
def _compiled_init(name: str, cfg) -> Callable:
    """``key -> (params, state)`` for ``cfg``, compiled as one program with the init options of
    :mod:`jaxnn._xla` (one compile per model config and process; the bits of the plain init)."""
    module = get(name)

    def plain(key):
        return module.init(key, cfg), module.init_state(cfg)

    compiled = _xla.jit(plain, kind="init")
    return lambda key: _xla.call_top_level(compiled, plain, key)


def __getattr__(name: str):
    if name == "recipe":  # moved to the application wing in 0.2
        import warnings

        warnings.warn(
            "jaxnn.models.recipe moved to jaxnn.app.recipes.recipe", DeprecationWarning, 2
        )
        from jaxnn.app.recipes import recipe  # noqa: PLC0415 - the deprecated alias only

        return recipe
    raise AttributeError(f"module 'jaxnn.models' has no attribute {name!r}")
