"""Old argument names, still accepted: one decorator for a renamed keyword argument.

Sizes are named one way across :mod:`jaxnn.layers`: ``in_dim`` and ``out_dim`` for a layer that
maps one size to another (dense, convolution, recurrent cells), ``dim`` for one that keeps it
(normalization, attention, embeddings, residual blocks). Names used before (``in_ch``,
``out_ch``, ``num_features``, ``hidden``, ``channels``) keep working as keywords, with a
:class:`DeprecationWarning` naming the new one.
"""

from __future__ import annotations

import functools
import warnings

__all__ = ["renamed_arguments"]


def renamed_arguments(**old_to_new: str):
    """Decorate a function so that each keyword ``old`` is passed on as ``old_to_new[old]``."""

    def wrap(fn):
        @functools.wraps(fn)
        def inner(*args, **kwargs):
            for old, new in old_to_new.items():
                if old not in kwargs:
                    continue
                if new in kwargs:
                    raise TypeError(f"{fn.__name__}: got both {old!r} (its old name) and {new!r}")
                warnings.warn(
                    f"{fn.__name__}: the argument {old!r} is now called {new!r}",
                    DeprecationWarning,
                    stacklevel=2,
                )
                kwargs[new] = kwargs.pop(old)
            return fn(*args, **kwargs)

        return inner

    return wrap
