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


def as_array(name: str, x, what: str = "input") -> jax.Array:
    """``x`` as a JAX array (tracers pass through); raise unless it is numeric array data.

    Strings, ``None``, dicts, ragged lists and Python ints beyond int64 are refused with a
    ``ValueError`` naming ``what``, instead of the ``TypeError`` or ``OverflowError`` JAX raises.
    """
    if isinstance(x, jax.Array):
        return x
    try:
        arr = jnp.asarray(x)
    except (TypeError, ValueError, OverflowError) as err:
        raise ValueError(
            f"{name}: expected {what} to be a numeric array, got {type(x).__name__} {x!r:.60}"
        ) from err
    return arr


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


#: The largest size a check accepts: array dimensions are at most int32 in XLA's index arithmetic.
MAX_SIZE = 2**31 - 1


def check_positive_int(name: str, value, what: str) -> int:
    """Raise unless ``value`` is a positive Python integer, at most :data:`MAX_SIZE`; return it."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"{name}: expected {what} to be a positive integer, got {value!r}")
    if value > MAX_SIZE:
        raise ValueError(f"{name}: expected {what} to be at most 2**31 - 1, got {value!r}")
    return int(value)


def check_bool(name: str, value, what: str) -> bool:
    """Raise unless ``value`` is a bool (``True``/``False``, not ``1`` or ``"yes"``); return it."""
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name}: expected {what} to be True or False, got {value!r}")
    return bool(value)


def check_key(name: str, key) -> None:
    """Raise unless ``key`` is a PRNG key: ``jax.random.key(seed)`` or ``jax.random.PRNGKey(seed)``.

    Checks the dtype and shape only, so it is free under ``jit``.
    """
    dtype = getattr(key, "dtype", None)
    typed = dtype is not None and jnp.issubdtype(dtype, jax.dtypes.prng_key)
    raw = dtype == np.uint32 and np.shape(key)[-1:] == (2,)
    if not (isinstance(key, (jax.Array, np.ndarray)) and (typed or raw)):
        got = (
            f"{type(key).__name__} of dtype {dtype} and shape {_shape(key)}"
            if dtype is not None
            else repr(key)
        )
        raise ValueError(f"{name}: expected a PRNG key from jax.random.key(seed), got {got:.80}")


def param_array(name: str, params, *path: str, ndim: int | None = None) -> jax.Array:
    """``params[path[0]][path[1]]...`` as an array; raise if a level is missing or malformed."""
    node = params
    for depth, key in enumerate(path):
        if not isinstance(node, dict) or key not in node:
            where = "params" + "".join(f"[{k!r}]" for k in path[:depth])
            got = sorted(node) if isinstance(node, dict) else type(node).__name__
            raise ValueError(f"{name}: expected {where} to hold a key {key!r}, got {got}")
        node = node[key]
    where = "params" + "".join(f"[{k!r}]" for k in path)
    arr = as_array(name, node, where)
    if ndim is not None and arr.ndim != ndim:
        raise ValueError(f"{name}: expected {where} of rank {ndim}, got shape {tuple(arr.shape)}")
    return arr


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


def check_nonempty_axis(name: str, x, axis: int) -> None:
    """Raise if axis ``axis`` of ``x`` is empty (a reduction over it has no value)."""
    if _shape(x)[axis] == 0:
        raise ValueError(
            f"{name}: expected a non-empty axis {axis} to reduce over, got shape {_shape(x)}"
        )
