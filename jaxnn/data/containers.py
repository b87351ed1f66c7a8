"""Data containers — Chapter 9: the dataset, what a model knows of it, and its three splits.

:class:`Dataset` holds examples and targets (read-only views, validated once), :class:`DatasetInfo`
what a model needs to know, :class:`SealedDataset` the test split that is opened once, and
:class:`Splits` the three together. Every data source (built-in datasets, a user's files, TFDS)
builds these, so they live in a module of their own that imports no source; how the splits are
carved is :mod:`jaxnn.data.splits`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from jaxnn.data.lazy import LazyArray, is_lazy

__all__ = [
    "TASKS",
    "MODALITIES",
    "Dataset",
    "DatasetInfo",
    "SealedDataset",
    "Splits",
]

TASKS = ("classification", "regression", "language_model")
MODALITIES = ("tabular", "signal", "image", "text")


@dataclasses.dataclass(frozen=True, eq=False)
class Dataset:
    """Examples ``x`` (N, ...) and targets ``y`` (N, ...) as NumPy arrays, batch axis first.

    Raises:
      ValueError: if ``x`` and ``y`` differ in length, the set is empty, or floating-point
        features contain NaN or infinity.
    """

    x: np.ndarray | LazyArray
    y: np.ndarray

    def __post_init__(self):
        lazy = is_lazy(self.x)  # a pack's rows, read when indexed (jaxnn.data.streaming)
        x, y = self.x if lazy else np.asarray(self.x), np.asarray(self.y)
        if x.ndim < 1 or y.ndim < 1:
            raise ValueError(
                f"Dataset: expected x and y with a leading batch axis, got shapes {x.shape} "
                f"and {y.shape}"
            )
        if len(x) != len(y):
            raise ValueError(
                f"Dataset: expected len(x) == len(y), got {len(x)} examples in x {x.shape} and "
                f"{len(y)} targets in y {y.shape}"
            )
        if len(x) == 0:
            raise ValueError(
                f"Dataset: expected at least one example, got an empty split {x.shape}"
            )
        # a lazy x is checked when packed, and by the streaming statistics pass
        for name, arr in (("y", y),) if lazy else (("x", x), ("y", y)):
            _check_finite(name, arr)
        object.__setattr__(self, "x", x if lazy else _readonly_view(x))
        object.__setattr__(self, "y", _readonly_view(y))

    def __len__(self) -> int:
        return len(self.x)

    def take(self, indices) -> Dataset:
        """Return the examples at ``indices`` (a copy, in that order)."""
        indices = np.asarray(indices)
        x = self.x.take(indices) if is_lazy(self.x) else self.x[indices]
        return Dataset(x, self.y[indices])


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """What a model and a training loop need to know about a dataset.

    Attributes:
      name: the name given to :func:`load`.
      task: ``"classification"``, ``"regression"`` or ``"language_model"``.
      input_shape: the shape of one example, e.g. ``(40,)``, ``(8, 8, 1)`` or ``(seq_len,)``.
      num_classes: classes; the vocabulary size for language models; the output dimension for
        regression.
      class_names: names of the classes, if known.
      tokenizer: the tokenizer (fitted on training text only) for language-model data.
      modality: ``"tabular"``, ``"signal"`` (1-D signals), ``"image"`` (H, W, C) or ``"text"``;
        it picks the default normalization and the augmentations that make sense.
      description: one line about where the data comes from.
      normalization: the training statistics the inputs were standardized with
        (:meth:`jaxnn.data.pipeline.Standardizer.to_json`), or None for raw inputs.
      notes: lines a reader of a user's file wants the user to see once (entries it skipped,
        missing values it dropped or filled); ``jaxnn train`` prints them.
      missing: for a CSV read with ``missing=drop`` or ``missing=mean``, what was done:
        ``{"policy", "cells", "rows", "dropped_rows", "fill"}`` (``fill``: each feature's
        training mean, by column name, for ``mean``); None when nothing was missing.
    """

    name: str
    task: str
    input_shape: tuple[int, ...]
    num_classes: int
    class_names: tuple | None = None
    tokenizer: Any = None
    modality: str = "tabular"
    description: str = ""
    normalization: dict | None = None
    notes: tuple[str, ...] = ()
    missing: dict | None = None

    def __post_init__(self):
        if self.task not in TASKS:
            raise ValueError(f"DatasetInfo: expected task in {TASKS}, got {self.task!r}")
        if self.modality not in MODALITIES:
            raise ValueError(
                f"DatasetInfo: expected modality in {MODALITIES}, got {self.modality!r}"
            )
        object.__setattr__(self, "input_shape", tuple(int(d) for d in self.input_shape))
        if self.class_names is not None:
            object.__setattr__(self, "class_names", tuple(self.class_names))
        object.__setattr__(self, "notes", tuple(str(n) for n in self.notes))

    def replace(self, **changes) -> DatasetInfo:
        """Return a copy with some fields replaced (``dataclasses.replace``)."""
        return dataclasses.replace(self, **changes)


class SealedDataset:
    """The test split, sealed: its arrays are reachable only through :meth:`unseal`.

    Chapter 13: the test set estimates performance on unseen data only if it is looked at once,
    at the end, by the model chosen on validation. Every :meth:`unseal` call is recorded, so a
    test can assert that the test set was scored exactly once. Sealed sets derived with
    :meth:`map` (e.g. the standardized test set) share the record of the set they came from.
    """

    def __init__(self, dataset: Dataset, *, _log: list | None = None):
        if not isinstance(dataset, Dataset):
            raise ValueError(f"SealedDataset: expected a Dataset, got {type(dataset).__name__}")
        self._dataset = dataset
        self._log = [] if _log is None else _log

    def __len__(self) -> int:
        return len(self._dataset)

    def __repr__(self) -> str:
        return f"SealedDataset(n={len(self)}, unsealed {self.unseal_count} times)"

    @property
    def unseal_count(self) -> int:
        """How many times this test set (or one derived from it) has been unsealed."""
        return len(self._log)

    @property
    def unseal_log(self) -> tuple[str, ...]:
        """The ``reason`` given at each :meth:`unseal` call, in order."""
        return tuple(self._log)

    def unseal(self, reason: str = "") -> Dataset:
        """Return the test :class:`Dataset` and record the call (with an optional ``reason``)."""
        self._log.append(str(reason))
        return self._dataset

    def map(self, fn: Callable[[Dataset], Dataset]) -> SealedDataset:
        """Apply a preprocessing ``fn`` without unsealing; the result shares the unseal record."""
        out = fn(self._dataset)
        if not isinstance(out, Dataset):
            raise ValueError(f"SealedDataset.map: expected fn to return a Dataset, got {type(out)}")
        return SealedDataset(out, _log=self._log)


@dataclasses.dataclass(frozen=True, eq=False)
class Splits:
    """Train, validation and (sealed) test sets with the :class:`DatasetInfo` that describes them.

    ``test`` may be given as a :class:`Dataset` (it is sealed here) or a :class:`SealedDataset`.

    Raises:
      ValueError: if a split's example shape differs from ``info.input_shape``, or labels fall
        outside ``[0, num_classes)`` (token ids outside the vocabulary for language models).
    """

    train: Dataset
    val: Dataset
    test: SealedDataset
    info: DatasetInfo

    if TYPE_CHECKING:  # the generated __init__ takes a Dataset for test too, and seals it

        def __init__(
            self, train: Dataset, val: Dataset, test: SealedDataset | Dataset, info: DatasetInfo
        ) -> None: ...

    def __post_init__(self):
        if isinstance(self.test, Dataset):
            object.__setattr__(self, "test", SealedDataset(self.test))
        for name, ds in (("train", self.train), ("val", self.val), ("test", self.test._dataset)):
            if not isinstance(ds, Dataset):
                raise ValueError(
                    f"Splits: expected {name} to be a Dataset, got {type(ds).__name__}"
                )
            _check_split(self.info, name, ds)

    def replace(self, **changes) -> Splits:
        """Return a copy with some fields replaced (``dataclasses.replace``)."""
        return dataclasses.replace(self, **changes)


def _check_split(info: DatasetInfo, name: str, ds: Dataset) -> None:
    where = f"Splits[{info.name}].{name}"
    if ds.x.shape[1:] != info.input_shape:
        raise ValueError(
            f"{where}: expected examples of shape {info.input_shape}, got x of shape {ds.x.shape}"
        )
    if info.task == "regression":
        if not np.issubdtype(ds.y.dtype, np.floating):
            raise ValueError(
                f"{where}: expected floating-point regression targets, got {ds.y.dtype}"
            )
        return
    arrays = (("labels", ds.y),) if info.task == "classification" else (("x", ds.x), ("y", ds.y))
    for what, arr in arrays:
        if not np.issubdtype(arr.dtype, np.integer):
            raise ValueError(f"{where}: expected integer {what}, got dtype {arr.dtype}")
        lo, hi = _value_range(arr)
        if lo < 0 or hi >= info.num_classes:
            raise ValueError(
                f"{where}: expected {what} in [0, {info.num_classes}), got values in [{lo}, {hi}]"
            )


def _check_finite(name: str, arr: np.ndarray) -> None:
    if np.issubdtype(arr.dtype, np.floating) and not np.isfinite(arr).all():
        finite = np.isfinite(arr).reshape(len(arr), -1).all(axis=1)  # (N,)
        bad = int(np.size(arr) - np.isfinite(arr).sum())
        raise ValueError(
            f"Dataset: expected finite values in {name}, got {bad} NaN/inf entries "
            f"in shape {arr.shape}, first in example {int(np.argmin(finite))}"
        )


def _value_range(arr) -> tuple[int, int]:
    """``(min, max)`` of an integer array, a lazy one read chunk by chunk."""
    if not is_lazy(arr):
        return int(arr.min()), int(arr.max())
    ranges = [(int(c.min()), int(c.max())) for c in arr.chunks()]
    return min(r[0] for r in ranges), max(r[1] for r in ranges)


def _readonly_view(arr: np.ndarray) -> np.ndarray:
    """A read-only view: a validated split cannot be changed in place behind its checks."""
    view = arr.view()
    view.flags.writeable = False
    return view
