"""Boundary checks shared by every public function.

Each check reads static shapes and dtypes only, so it costs nothing under ``jax.jit`` and fires at
trace time with a ``ValueError`` that names what was expected and what was given, before JAX
produces an opaque error deep inside a trace.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np


def _shape(x) -> tuple[int, ...]:
    return tuple(np.shape(x))


def check_rank(name: str, x, ranks: int | Sequence[int]) -> None:
    """Raise unless ``x.ndim`` is one of ``ranks``."""
    ranks = (ranks,) if isinstance(ranks, int) else tuple(ranks)
    if np.ndim(x) not in ranks:
        want = " or ".join(str(r) for r in ranks)
        raise ValueError(
            f"{name}: expected rank {want}, got rank {np.ndim(x)} with shape {_shape(x)}"
        )


def check_min_rank(name: str, x, rank: int) -> None:
    """Raise unless ``x.ndim >= rank``."""
    if np.ndim(x) < rank:
        raise ValueError(
            f"{name}: expected rank >= {rank}, got rank {np.ndim(x)} with shape {_shape(x)}"
        )


def check_dim(name: str, x, axis: int, size: int, what: str = "") -> None:
    """Raise unless ``x.shape[axis] == size``."""
    got = _shape(x)[axis]
    if got != size:
        extra = f" ({what})" if what else ""
        raise ValueError(
            f"{name}: expected size {size} on axis {axis}{extra}, got {got} in shape {_shape(x)}"
        )


def check_same_shape(name: str, a, b, a_name: str = "a", b_name: str = "b") -> None:
    """Raise unless ``a`` and ``b`` have the same shape."""
    if _shape(a) != _shape(b):
        raise ValueError(
            f"{name}: expected {a_name} and {b_name} to have the same shape, "
            f"got {_shape(a)} and {_shape(b)}"
        )


def check_positive_int(name: str, value, what: str) -> int:
    """Raise unless ``value`` is a positive Python integer; return it."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"{name}: expected {what} to be a positive integer, got {value!r}")
    return int(value)


def check_integer_dtype(name: str, x, what: str = "labels") -> None:
    """Raise unless ``x`` has an integer dtype."""
    dtype = jnp.asarray(x).dtype if not hasattr(x, "dtype") else x.dtype
    if not jnp.issubdtype(dtype, jnp.integer):
        raise ValueError(f"{name}: expected integer {what}, got dtype {dtype}")


def check_floating_dtype(name: str, x, what: str = "input") -> None:
    """Raise unless ``x`` has a floating dtype."""
    dtype = jnp.asarray(x).dtype if not hasattr(x, "dtype") else x.dtype
    if not jnp.issubdtype(dtype, jnp.floating):
        raise ValueError(f"{name}: expected floating-point {what}, got dtype {dtype}")


def check_labels_in_range(name: str, labels, num_classes: int) -> None:
    """Raise if concrete integer ``labels`` fall outside ``[0, num_classes)``.

    Traced labels (inside ``jit``) cannot be inspected and are passed through unchecked.
    """
    if isinstance(labels, jax.core.Tracer):  # values unknown at trace time
        return
    arr = np.asarray(labels)
    if arr.size and (arr.min() < 0 or arr.max() >= num_classes):
        raise ValueError(
            f"{name}: expected labels in [0, {num_classes}), got values in "
            f"[{arr.min()}, {arr.max()}]"
        )


def check_param_shape(name: str, params: dict, key: str, shape: tuple[int, ...]) -> None:
    """Raise unless ``params[key]`` exists and has ``shape``."""
    if key not in params:
        raise ValueError(f"{name}: expected a parameter {key!r}, got keys {sorted(params)}")
    got = _shape(params[key])
    if got != tuple(shape):
        raise ValueError(f"{name}: expected parameter {key!r} of shape {tuple(shape)}, got {got}")


def check_probability(name: str, value, what: str) -> float:
    """Raise unless ``0 <= value < 1``; return it as float."""
    if not isinstance(value, (int, float, np.floating)) or not 0.0 <= float(value) < 1.0:
        raise ValueError(f"{name}: expected {what} in [0, 1), got {value!r}")
    return float(value)


def check_axis(name: str, x, axis: int) -> int:
    """Raise unless ``axis`` is an axis of ``x`` (negative counts from the end); return it >= 0."""
    ndim = np.ndim(x)
    is_int = isinstance(axis, (int, np.integer)) and not isinstance(axis, bool)
    if not is_int or not -ndim <= axis < ndim:
        raise ValueError(
            f"{name}: expected axis in [{-ndim}, {ndim}) for input of rank {ndim}, "
            f"got axis {axis!r} with shape {_shape(x)}"
        )
    return int(axis) % ndim
