"""Backend tuning in one room: every XLA compile option jaxnn passes, and where it applies.

jaxnn's code is the same on every backend; only the options given to XLA's compiler differ, and
only on CPU. They live here, so a model or the training loop carries none, and each is visible
and can be turned off by the caller:

- **Train and eval steps** (:func:`jit`, ``kind="step"``): XLA's CPU library fusion (dot
  fusions into its matmul library) speeds up some steps and slows others. :data:`LIBRARY_FUSION`
  holds the choice per workload, measured side by side by the benchmarks (``python -m
  benchmarks``, ``benchmarks/conv_cpu.py``): on for the CNN and GRU, off for the MLP and the
  Transformer. A workload not listed gets it on.
- **Initializers** (``kind="init"``): compiled as one program at XLA's backend optimization
  level 1 without the CPU fusion emitters, which gives the bits of the module's ``init`` called
  outside ``jit`` (a test checks every model) and compiles about 3x sooner than XLA's defaults
  (threefry's unrolled rounds dominate).

A caller who passes ``compiler_options`` (``{}`` for none) gets exactly those instead. Off CPU,
and where the installed XLA does not know an option, nothing is added. Nothing here is applied
on import, and nothing changes a global setting.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import jax

__all__ = ["INIT_OPTIONS", "LIBRARY_FUSION", "STEP_OPTIONS", "call_top_level", "jit", "options"]

#: Options for the programs that initialize params and optimizer state.
INIT_OPTIONS: dict[str, int | bool | str] = {
    "xla_backend_optimization_level": 1,
    "xla_cpu_use_fusion_emitters": False,
}
#: Options for a train or eval step whose workload uses XLA's CPU library fusion.
STEP_OPTIONS: dict[str, int | bool | str] = {
    "xla_cpu_experimental_ynn_fusion_type": "LIBRARY_FUSION_TYPE_DOT"
}
#: Library fusion per workload (a model's name), measured by the benchmarks; unlisted: on.
LIBRARY_FUSION = {"mlp": False, "transformer": False, "cnn": True, "rnn": True}
KINDS = ("step", "init")


@functools.cache
def _known(frozen: tuple) -> bool:
    """Whether this XLA accepts the options (an older one may not know them)."""
    try:
        jax.jit(lambda x: x + 1, compiler_options=dict(frozen)).lower(0.0).compile()
    except Exception:  # noqa: BLE001 - an XLA without these options: its defaults
        return False
    return True


def options(kind: str = "step", workload: str | None = None) -> dict | None:
    """The compile options jaxnn uses for ``kind`` (``"step"`` or ``"init"``) of ``workload``.

    Returns:
      A dict for :func:`jax.jit`'s ``compiler_options``, or None (off CPU, for a workload that
      goes without, or where this XLA does not know the options).
    """
    if kind not in KINDS:
        raise ValueError(f"_xla.options: expected kind in {KINDS}, got {kind!r}")
    if jax.default_backend() != "cpu":
        return None
    if kind == "init":
        chosen = INIT_OPTIONS
    elif LIBRARY_FUSION.get(workload or "", True):
        chosen = STEP_OPTIONS
    else:
        return None
    return dict(chosen) if _known(tuple(sorted(chosen.items()))) else None


def jit(fun: Callable, *, kind="step", workload=None, compiler_options=None, **kwargs):
    """``jax.jit(fun, **kwargs)`` with :func:`options` for ``kind`` and ``workload``, or with
    ``compiler_options`` when the caller gives them (``{}``: plain ``jax.jit``)."""
    chosen = options(kind, workload) if compiler_options is None else compiler_options
    return jax.jit(fun, compiler_options=chosen or None, **kwargs)


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
