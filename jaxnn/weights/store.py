"""Weights as safetensors files — Chapter 15: a checkpoint is a saved model state that can be
restored later; this one can be restored by any framework.

A safetensors file is an 8-byte header length, a JSON header (each tensor's name, dtype, shape
and byte range, and a ``__metadata__`` object of strings) and the raw little-endian bytes of the
tensors. Reading one runs no code (unlike a pickle), so a file from anywhere is safe to open.

**The naming rule.** A leaf's name is its path in the tree, the keys joined by ``"."``: dict keys
as they are, list and tuple positions as decimal numbers, NamedTuple fields by name. So
``{"dense_0": {"w": W, "b": b}}`` is stored as ``dense_0.w`` and ``dense_0.b``. A dict key must be
a non-empty string without ``"."``, so that every name has one path. The dtype of every leaf is
kept (float32, bfloat16, float16, float64, float8, the signed and unsigned integers, bool).

**A model file** (:func:`save_model`) holds the tree ``{"params": params, "state": state}``
(names ``params.conv_0.w``, ``state.bn_0.mean``; ``state`` is the model's non-trained state,
the batch-norm running statistics, empty for most models) and its header names the model and
its config, so :func:`load_model` rebuilds the model from the file alone.

**What is refused.** :func:`load` reads a file against a target tree (arrays or
``jax.ShapeDtypeStruct`` leaves, e.g. ``jax.eval_shape`` of an init) and raises one line naming
the first mismatch, in the target's order: a name the file lacks, then a shape or a dtype that
differs; then a name the file has and the target lacks.

Header metadata written here (every value a string, as the format requires):
``jaxnn.format_version`` (:data:`FORMAT_VERSION`), and in a model file ``jaxnn.model`` (the name
in :data:`jaxnn.models.NAMES`), ``jaxnn.config`` (the model's config as JSON) and
``jaxnn.layout`` (``"jaxnn"``, or ``"torch"`` for a PyTorch state dict).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import safetensors
import safetensors.numpy

from jaxnn._contained import write_replacing
from jaxnn.errors import UserError

__all__ = [
    "FORMAT_VERSION",
    "LoadedModel",
    "first_mismatch",
    "flatten",
    "load",
    "load_model",
    "model_metadata",
    "read",
    "save",
    "save_model",
    "save_tensors",
    "specs",
]

FORMAT_VERSION = 1
VERSION, MODEL = "jaxnn.format_version", "jaxnn.model"
CONFIG, LAYOUT = "jaxnn.config", "jaxnn.layout"

#: safetensors dtype codes and the NumPy dtypes they are read as.
DTYPES = {
    "BOOL": np.dtype(bool),
    "U8": np.dtype(np.uint8),
    "I8": np.dtype(np.int8),
    "U16": np.dtype(np.uint16),
    "I16": np.dtype(np.int16),
    "U32": np.dtype(np.uint32),
    "I32": np.dtype(np.int32),
    "U64": np.dtype(np.uint64),
    "I64": np.dtype(np.int64),
    "F16": np.dtype(np.float16),
    "BF16": np.dtype(jnp.bfloat16),
    "F32": np.dtype(np.float32),
    "F64": np.dtype(np.float64),
    "F8_E4M3": np.dtype(jnp.float8_e4m3fn),
    "F8_E5M2": np.dtype(jnp.float8_e5m2),
}
_WRITABLE = frozenset(DTYPES.values())


class LoadedModel(NamedTuple):
    """A model file, read back: the :class:`jaxnn.models.Model` its header names, its params
    and its state (NumPy arrays, the file's bits)."""

    model: Any
    params: Any
    state: Any


def _key_name(key, where: str) -> str:
    """One path component of the naming rule."""
    if isinstance(key, jax.tree_util.DictKey):
        name = key.key
        if not isinstance(name, str) or not name or "." in name:
            raise ValueError(
                f"weights.flatten: expected dict keys that are non-empty strings without '.', "
                f"got {name!r} under {where or 'the root'}"
            )
        return name
    if isinstance(key, jax.tree_util.SequenceKey):
        return str(key.idx)
    if isinstance(key, jax.tree_util.GetAttrKey):
        return key.name
    raise ValueError(
        f"weights.flatten: expected dicts, lists, tuples and NamedTuples, got a "
        f"{type(key).__name__} under {where or 'the root'}"
    )


def _named_leaves(tree) -> list[tuple[str, Any]]:
    """``[(name, leaf), ...]`` in the tree's flattening order."""
    named, seen = [], set()
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        parts: list[str] = []
        for key in path:
            parts.append(_key_name(key, ".".join(parts)))
        name = ".".join(parts)
        if not name:
            raise ValueError("weights.flatten: expected a tree of named leaves, got a bare leaf")
        if name in seen:
            raise ValueError(f"weights.flatten: expected one leaf per name, got {name!r} twice")
        seen.add(name)
        named.append((name, leaf))
    return named


def _as_numpy(name: str, leaf) -> np.ndarray:
    dtype = getattr(leaf, "dtype", None)
    if dtype is None or not hasattr(leaf, "shape") or isinstance(leaf, jax.ShapeDtypeStruct):
        raise ValueError(f"weights.save: expected an array at {name!r}, got {type(leaf).__name__}")
    if jax.dtypes.issubdtype(dtype, jax.dtypes.extended):
        raise ValueError(
            f"weights.save: expected a plain array at {name!r}, got dtype {dtype}; store a PRNG "
            "key as jax.random.key_data(key)"
        )
    if np.dtype(dtype) not in _WRITABLE:
        raise ValueError(
            f"weights.save: expected one of the dtypes safetensors stores "
            f"({', '.join(sorted(str(d) for d in _WRITABLE))}), got {dtype} at {name!r}"
        )
    return np.asarray(jax.device_get(leaf), order="C")  # ascontiguousarray would make 0-d 1-d


def flatten(tree) -> dict[str, np.ndarray]:
    """The leaves of ``tree`` as ``{name: NumPy array}``, named by the module's naming rule.

    Chapter 15: the flat names are what a saved model state is known by outside this library.

    Args:
      tree: nested dicts (string keys without "."), lists, tuples and NamedTuples of arrays.

    Returns:
      ``{"dense_0.w": ..., "dense_0.b": ...}`` in the tree's flattening order (sorted dict keys).

    Raises:
      ValueError: a key that breaks the naming rule, a leaf that is not an array, or a dtype
        safetensors does not store.
    """
    return {name: _as_numpy(name, leaf) for name, leaf in _named_leaves(tree)}


def _check_metadata(metadata) -> dict[str, str]:
    metadata = {} if metadata is None else metadata
    if not isinstance(metadata, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
    ):
        raise ValueError(f"weights.save: expected metadata as a dict of strings, got {metadata!r}")
    return {VERSION: str(FORMAT_VERSION), **metadata}


def save_tensors(path, tensors: Mapping[str, Any], *, metadata: dict | None = None) -> Path:
    """Write a flat ``{name: array}`` mapping as a safetensors file, names as given.

    Chapter 15: the file is written to a new name in the same folder, flushed to disk, then
    renamed over ``path``: a reader sees the old file or the new one, and a symbolic link at
    ``path`` is replaced, never written through.

    Args:
      path: the file to write.
      tensors: ``{name: array}``; names are non-empty strings (a PyTorch state dict's keys, say).
      metadata: ``{str: str}`` for the header, beside ``jaxnn.format_version``.

    Returns:
      ``path`` as a :class:`~pathlib.Path`.

    Raises:
      ValueError: an empty or non-string name, a leaf that is not an array, a dtype safetensors
        does not store, or metadata that is not strings.
    """
    header = _check_metadata(metadata)
    arrays = {}
    for name, leaf in tensors.items():
        if not isinstance(name, str) or not name:
            raise ValueError(f"weights.save: expected non-empty string names, got {name!r}")
        arrays[name] = _as_numpy(name, leaf)
    return write_replacing(Path(path), safetensors.numpy.save(arrays, metadata=header))


def save(path, tree, *, metadata: dict | None = None) -> Path:
    """Save a pytree of arrays as a safetensors file, its leaves named by the naming rule.

    Chapter 15: a saved model state that any framework can restore; ``{"dense_0": {"w": W}}``
    is stored as the tensor ``dense_0.w``, dtype and bits kept.

    Args:
      path: the file to write (replaced atomically, as :func:`save_tensors` says).
      tree: nested dicts, lists, tuples and NamedTuples of arrays.
      metadata: ``{str: str}`` for the header.

    Returns:
      ``path`` as a :class:`~pathlib.Path`.

    Raises:
      ValueError: as :func:`flatten` and :func:`save_tensors`.
    """
    return save_tensors(path, flatten(tree), metadata=metadata)


def _read_bytes(path: Path, data: bytes) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    try:
        entries = safetensors.deserialize(data)
    except Exception as err:  # safetensors raises its own SafetensorError (or a panic) here
        raise UserError(f"weights.read: {path}: expected a safetensors file, got {err}") from None
    size = int.from_bytes(data[:8], "little")
    metadata = json.loads(data[8 : 8 + size]).get("__metadata__") or {}
    tensors = {}
    for name, entry in entries:
        dtype = DTYPES.get(entry["dtype"])
        if dtype is None:
            raise UserError(
                f"weights.read: {path}: expected tensors of dtypes {', '.join(DTYPES)}, got "
                f"{entry['dtype']} for {name!r}"
            )
        tensors[name] = np.frombuffer(entry["data"], dtype).reshape(entry["shape"])
    return tensors, metadata


def read(path) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Every tensor of a safetensors file and its header metadata.

    Chapter 15: a saved state read back without assuming what wrote it (jaxnn, PyTorch, ...).

    Args:
      path: a safetensors file.

    Returns:
      ``(tensors, metadata)``: ``{name: NumPy array}`` with the file's dtypes and bits, and the
      header's ``{str: str}`` metadata (``{}`` if it has none).

    Raises:
      UserError: if the file is not a safetensors file or holds a dtype NumPy cannot hold.
      OSError: if the file cannot be read.
    """
    path = Path(path)
    return _read_bytes(path, path.read_bytes())


def specs(tree) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """``{name: (shape, dtype)}`` of a tree's leaves, named by the naming rule.

    Args:
      tree: a tree of arrays or ``jax.ShapeDtypeStruct`` (``jax.eval_shape`` of an init).

    Returns:
      The names in the tree's flattening order, with each leaf's shape and dtype.

    Raises:
      ValueError: a key that breaks the naming rule, or a leaf without a shape and a dtype.
    """
    out = {}
    for name, leaf in _named_leaves(tree):
        if not hasattr(leaf, "shape") or not hasattr(leaf, "dtype"):
            raise ValueError(
                f"weights.specs: expected arrays or jax.ShapeDtypeStruct, got "
                f"{type(leaf).__name__} at {name!r}"
            )
        out[name] = (tuple(leaf.shape), np.dtype(leaf.dtype))
    return out


def first_mismatch(tensors: Mapping[str, Any], want: Mapping[str, tuple]) -> str | None:
    """The first way ``tensors`` differ from ``want``, as a phrase, or ``None`` if they agree.

    Names are compared in ``want``'s order: a missing name, then a different shape, then a
    different dtype; then the first (sorted) name ``want`` lacks.

    Args:
      tensors: ``{name: array}``.
      want: ``{name: (shape, dtype)}``; a dtype of ``None`` accepts any dtype.

    Returns:
      e.g. ``"expected 'dense_0.w' of shape (4, 8), got shape (4, 16)"``, or ``None``.
    """
    for name, (shape, dtype) in want.items():
        if name not in tensors:
            kind = f", {dtype}" if dtype is not None else ""
            return f"expected a tensor {name!r} of shape {tuple(shape)}{kind}, got no such name"
        got = tensors[name]
        if tuple(np.shape(got)) != tuple(shape):
            return f"expected {name!r} of shape {tuple(shape)}, got shape {tuple(np.shape(got))}"
        if dtype is not None and np.dtype(got.dtype) != np.dtype(dtype):
            return f"expected {name!r} as {np.dtype(dtype)}, got {np.dtype(got.dtype)}"
    extra = sorted(set(tensors) - set(want))
    if extra:
        return f"expected only the target's {len(want)} names, got also {extra[0]!r}"
    return None


def _check_version(path: Path, metadata: dict) -> None:
    version = metadata.get(VERSION, str(FORMAT_VERSION))
    if not version.isdigit() or int(version) > FORMAT_VERSION:
        raise UserError(
            f"weights.load: {path}: expected {VERSION} {FORMAT_VERSION} or older, got {version!r}; "
            "a newer jaxnn wrote it"
        )


def _load_against(path: Path, tensors: dict, metadata: dict, target, *, dtypes: bool = True):
    _check_version(path, metadata)
    want = {
        name: (shape, dtype if dtypes else None) for name, (shape, dtype) in specs(target).items()
    }
    problem = first_mismatch(tensors, want)
    if problem:
        raise UserError(f"weights.load: {path}: {problem}")
    treedef = jax.tree.structure(target)
    return jax.tree.unflatten(treedef, [tensors[name] for name in want])


def load(path, target):
    """Read a safetensors file into the structure of ``target``, refusing any mismatch.

    Chapter 15: restoring a saved state is only right for the model it was saved from, so the
    names, shapes and dtypes must all agree.

    Args:
      path: a safetensors file (written by :func:`save`, or by any program that follows the
        naming rule).
      target: a tree of arrays or ``jax.ShapeDtypeStruct`` (``jax.eval_shape(init, key)``);
        only its structure, shapes and dtypes are used.

    Returns:
      A tree like ``target`` whose leaves are the file's tensors as NumPy arrays (the file's
      bits; int64 stays int64 whatever JAX's x64 setting).

    Raises:
      UserError: one line naming the file and its first mismatch with ``target`` (a missing
        name, a shape, a dtype, an unexpected name), a file that is not safetensors, or one
        written by a newer format version.
    """
    path = Path(path)
    tensors, metadata = read(path)
    return _load_against(path, tensors, metadata, target)


def model_metadata(model, *, layout: str = "jaxnn") -> dict[str, str]:
    """The header of a model file: the model's name, its config as JSON and the layout.

    Args:
      model: a :class:`jaxnn.models.Model` (``jaxnn.models.build(...)``).
      layout: ``"jaxnn"`` (names of the naming rule) or ``"torch"`` (a PyTorch state dict).

    Returns:
      ``{"jaxnn.model": ..., "jaxnn.config": ..., "jaxnn.layout": ...}``.
    """
    config = json.dumps(dataclasses.asdict(model.cfg), sort_keys=True)
    return {MODEL: model.name, CONFIG: config, LAYOUT: layout}


def _model_target(model) -> dict:
    params, state = jax.eval_shape(model.init, jax.random.key(0))
    return {"params": params, "state": state}


def save_model(path, model, params, state=None) -> Path:
    """Save a model's params and state with its name and config in the header.

    Chapter 15: the file is the trained model: :func:`load_model` needs nothing else.

    Args:
      path: the file to write.
      model: the :class:`jaxnn.models.Model` the params belong to.
      params: its params.
      state: its state (``model.init(key)[1]`` shapes; ``None`` for a stateless model).

    Returns:
      ``path`` as a :class:`~pathlib.Path`.

    Raises:
      ValueError: params or state that do not match ``model`` (the first mismatch named).
    """
    tree = {"params": params, "state": {} if state is None else state}
    tensors = flatten(tree)
    want = {name: (shape, None) for name, (shape, _) in specs(_model_target(model)).items()}
    problem = first_mismatch(tensors, want)
    if problem:
        raise ValueError(f"weights.save_model: {model.name}: {problem}")
    return save_tensors(path, tensors, metadata=model_metadata(model))


def _model_from_metadata(path: Path, metadata: dict):
    from jaxnn import models

    if metadata.get(LAYOUT, "jaxnn") != "jaxnn" or MODEL not in metadata:
        raise UserError(
            f"weights.load_model: {path}: expected a jaxnn model file (header {MODEL!r}, layout "
            f"'jaxnn'), got metadata keys {sorted(metadata)} and layout "
            f"{metadata.get(LAYOUT, 'jaxnn')!r}"
        )
    try:
        config = json.loads(metadata.get(CONFIG, "{}"))
        fields = {k: tuple(v) if isinstance(v, list) else v for k, v in config.items()}
        return models.build(metadata[MODEL], **fields)
    except (TypeError, ValueError, AttributeError) as err:
        raise UserError(
            f"weights.load_model: {path}: the saved model does not build: {err}"
        ) from None


def load_model(path) -> LoadedModel:
    """Rebuild a model from a model file: the model its header names, its params and state.

    Chapter 15: a saved model state restored with nothing but the file.

    Args:
      path: a file written by :func:`save_model` (or ``jaxnn export --format safetensors``).

    Returns:
      ``LoadedModel(model, params, state)``: the names and shapes are the model's, the dtypes the
      file's (a bfloat16 copy stays bfloat16).

    Raises:
      UserError: a file without a jaxnn model header, a model that does not build from it, or
        tensors that do not match the model (as :func:`load`).
    """
    path = Path(path)
    tensors, metadata = read(path)
    model = _model_from_metadata(path, metadata)
    tree = _load_against(path, tensors, metadata, _model_target(model), dtypes=False)
    return LoadedModel(model, tree["params"], tree["state"])
