"""Evaluating a function's jaxpr one equation at a time, to see its intermediate values.

Chapter 14 needs the outputs of the layers inside ``model.apply`` (dead and saturated units,
the first NaN) without changing the models. :func:`evaluate` traces ``fun(params, *args)``
with ``jax.make_jaxpr`` and runs the jaxpr through an :class:`Interpreter`, which binds each
equation's primitive eagerly and shows every equation, with its input and output values, to
:meth:`Interpreter.visit`; a subclass decides what to record and whether to enter a call
(``jit``, ``custom_jvp_call``, ...) and evaluate its insides too. Loops (``scan``, ``while``) are
evaluated as one step.

The interpreter also keeps track of the layer it is in: the output of a ``dot_general`` or
``conv_general_dilated`` is a *layer*, named after the parameter it multiplies (``['dense_0']``)
when one of its operands is a parameter leaf (or a reshape, transpose or cast of one).

This module uses JAX's internals (``jax.extend.core``, ``eqn.ctx``, ``get_bind_params``); it is
the one place in jaxnn that does.
"""

from __future__ import annotations

from typing import Any, TypeVar

import jax
import jax.numpy as jnp
import numpy as np
from jax.extend import core as jcore

__all__ = ["Interpreter", "Frame", "Stop", "evaluate", "sub_jaxpr", "is_float", "finite"]

_CALLS = frozenset({"jit", "pjit", "closed_call", "core_call", "custom_jvp_call", "remat"})
_LAYERS = frozenset({"dot_general", "conv_general_dilated"})
_PASS_ORIGIN = frozenset(
    {"reshape", "convert_element_type", "transpose", "copy", "squeeze", "expand_dims"}
)


class Stop(Exception):
    """Raised by a :meth:`Interpreter.visit` to end the evaluation; :func:`evaluate` catches it."""


def is_float(value) -> bool:
    """Whether ``value`` has a floating (or complex) dtype (Chapter 14: only those go NaN)."""
    return jnp.issubdtype(getattr(value, "dtype", np.float64), jnp.inexact)


def finite(value) -> bool:
    """Whether ``value`` holds no NaN or infinity (Chapter 14: the first NaN); non-float
    values are always finite."""
    return not is_float(value) or bool(np.isfinite(np.asarray(value)).all())


def _literal(var) -> bool:
    return isinstance(var, jcore.Literal)


def sub_jaxpr(eqn) -> tuple[Any, Any] | None:
    """``(jaxpr, consts)`` of a call equation, or ``None`` for any other equation.

    Chapter 14: a call (``jax.nn.relu``, a jitted layer) is entered to see the layers inside.
    """
    if eqn.primitive.name not in _CALLS:
        return None
    for key in ("jaxpr", "call_jaxpr"):
        sub = eqn.params.get(key)
        if isinstance(sub, jcore.ClosedJaxpr):
            return sub.jaxpr, sub.consts
        if isinstance(sub, jcore.Jaxpr):
            return sub, ()
    return None


def _bind(eqn, invals):
    with eqn.ctx.manager:
        out = eqn.primitive.bind(*invals, **eqn.primitive.get_bind_params(eqn.params))
    return list(out) if eqn.primitive.multiple_results else [out]


class Frame:
    """The values of one jaxpr being evaluated, and the equation that produced each."""

    def __init__(self):
        self.env, self.producers = {}, {}

    def read(self, var):
        """The value of ``var`` (a literal's own value)."""
        return var.val if _literal(var) else self.env[var]

    def producer(self, var):
        """The equation whose output ``var`` is (``None`` for inputs and literals)."""
        return None if _literal(var) else self.producers.get(var)


class Interpreter:
    """Evaluate a jaxpr eagerly, one equation at a time, showing each to :meth:`visit`.

    Attributes:
      layer: the latest layer evaluated (``['dense_0']``, ``dot_general_3``), or ``input``.
    """

    def __init__(self):
        self.layer = "input"
        self._count = 0

    def run(self, jaxpr, consts, args, origins) -> list:
        """Evaluate ``jaxpr`` on ``args``; ``origins`` names the parameter leaf of each argument
        (``None`` for the others). Returns the outputs."""
        frame, origin = Frame(), {}
        frame.env.update(zip(jaxpr.constvars, consts, strict=True))
        for var, val, where in zip(jaxpr.invars, args, origins, strict=True):
            frame.env[var] = val
            if where is not None:
                origin[var] = where
        for eqn in jaxpr.eqns:
            invals = [frame.read(v) for v in eqn.invars]
            origins_in = [None if _literal(v) else origin.get(v) for v in eqn.invars]
            outvals = _bind(eqn, invals)
            self.visit(eqn, invals, outvals, origins_in, frame)
            for var, val in zip(eqn.outvars, outvals, strict=True):
                frame.env[var], frame.producers[var] = val, eqn
            _pass_origin(eqn, origin)
        return [frame.read(v) for v in jaxpr.outvars]

    def visit(self, eqn, invals, outvals, origins, frame) -> None:
        """See one equation after it ran. The default enters calls and notes layers."""
        if not self.enter(eqn, invals, origins):
            self.note_layer(eqn, origins)

    def enter(self, eqn, invals, origins) -> bool:
        """Evaluate the insides of a call equation; ``False`` if ``eqn`` is no call."""
        sub = sub_jaxpr(eqn)
        if sub is None:
            return False
        self.run(*sub, invals, origins)
        return True

    def note_layer(self, eqn, origins) -> bool:
        """Make ``eqn`` the current :attr:`layer` if it is one; ``False`` if it is not."""
        if eqn.primitive.name not in _LAYERS:
            return False
        self._count += 1
        params = [o for o in origins if o is not None]
        self.layer = params[0] if params else f"{eqn.primitive.name}_{self._count}"
        return True


_I = TypeVar("_I", bound=Interpreter)


def _pass_origin(eqn, origin: dict) -> None:
    sources = [origin[v] for v in eqn.invars if not _literal(v) and v in origin]
    if eqn.primitive.name in _PASS_ORIGIN and sources:
        origin[eqn.outvars[0]] = sources[0]


def _param_origins(params) -> list[str]:
    leaves = jax.tree_util.tree_flatten_with_path(params)[0]
    return [jax.tree_util.keystr(path[:-1] if len(path) > 1 else path) for path, _ in leaves]


def evaluate(interpreter: _I, fun, params, *args) -> _I:
    """Trace ``fun(params, *args)`` and run its jaxpr through ``interpreter`` (until it stops).

    Chapter 14: the intermediate values of a model, read without changing it.

    Returns:
      ``interpreter``, with whatever it recorded.
    """
    closed = jax.make_jaxpr(fun)(params, *args)
    leaves = jax.tree_util.tree_leaves((params, *args))
    origins: list[str | None] = list(_param_origins(params))
    origins += [None] * (len(leaves) - len(origins))
    try:
        interpreter.run(closed.jaxpr, closed.consts, leaves, origins)
    except Stop:
        pass
    return interpreter
