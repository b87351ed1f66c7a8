"""Named partials: one documented function per family, its members as ``functools.partial``.

The pattern is optax's (``nadam = functools.partial(adam, nesterov=True)``): the family function
carries the math and the arguments once, and each member fixes a few of them. A member also gets
a ``__name__``, ``__module__`` and a one-line ``__doc__``, so it reads and introspects like a
function.
"""

from __future__ import annotations

import functools


def named_partial(func, name: str, doc: str, /, **fixed) -> functools.partial:
    """``functools.partial(func, **fixed)`` called ``name``, in ``func``'s module, with ``doc``."""
    member = functools.partial(func, **fixed)
    for attribute, value in (("__name__", name), ("__qualname__", name)):
        setattr(member, attribute, value)  # a partial takes them; typeshed does not say so
    member.__module__ = func.__module__
    member.__doc__ = doc
    return member
