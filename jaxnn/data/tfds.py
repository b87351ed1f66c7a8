"""TensorFlow Datasets as :class:`~jaxnn.data.Splits` — Chapter 9: data pipelines, any dataset.

``jaxnn.data.load("tfds:<name>")`` reads a dataset that TFDS has already prepared on disk, through
``tfds.data_source`` (random access to ArrayRecord files, which needs no TensorFlow); with
``stream=True`` the inputs stay in those files and each batch is decoded as it is read, for a
dataset larger than memory. Nothing is
downloaded unless ``download=True`` is passed, so an offline machine gets a clear error that says
how to prepare the data instead of a hang while the network is retried.
"""

from __future__ import annotations

import numpy as np

from jaxnn.data.containers import Dataset, DatasetInfo, Splits
from jaxnn.data.lazy import SourceArray, read_records
from jaxnn.data.splits import split
from jaxnn.errors import UserError

__all__ = ["load_tfds"]


def _import_tfds():
    try:
        import tensorflow_datasets as tfds
    except ImportError as e:
        raise ValueError(
            "load('tfds:...'): expected the tensorflow-datasets package; install it with "
            "`pip install 'jaxnn[tfds]'`"
        ) from e
    return tfds


def _tensorflow_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("tensorflow") is not None


def _not_prepared(name: str, split_names, data_dir, cause: Exception) -> str:
    """What works in this install to prepare a TFDS dataset, in one message."""
    where = data_dir or "the TFDS data directory (~/tensorflow_datasets or $TFDS_DATA_DIR)"
    if _tensorflow_installed():
        how = (
            f"prepare it once with network access: `tfds build {name} "
            f"--file_format=array_record` (or load('tfds:{name}', download=True))"
        )
    else:
        how = (
            "this install has no TensorFlow, which `tfds build` and download=True need: run "
            "`pip install tensorflow` and then "
            f"`tfds build {name} --file_format=array_record` on a machine with network access, "
            "or copy a data directory prepared elsewhere (ArrayRecord format) here; reading it "
            "needs no TensorFlow"
        )
    return (
        f"load('tfds:{name}'): splits {split_names} are not prepared in {where}; {how}. "
        f"Cause: {type(cause).__name__}: {str(cause)[:200]}"
    )


def _inputs(examples, x_key: str) -> np.ndarray:
    x = np.stack([np.asarray(e[x_key]) for e in examples])  # (N, ...)
    if x.dtype == np.uint8:
        x = x.astype(np.float32) / 255.0  # pixels to [0, 1]
    elif np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float32)
    return x


def _labels(examples, y_key: str) -> np.ndarray:
    return np.asarray([e[y_key] for e in examples]).astype(np.int32)  # (N,)


def _to_arrays(examples, x_key: str, y_key: str) -> tuple[np.ndarray, np.ndarray]:
    return _inputs(examples, x_key), _labels(examples, y_key)


def _streamed(name: str, split_name: str, src, max_examples, x_key: str, y_key: str) -> Dataset:
    """One split whose inputs stay in the source, decoded batch by batch when indexed; the
    labels are read in one pass of 4096 records at a time (memory bounded by a chunk)."""
    n = len(src) if max_examples is None else min(len(src), int(max_examples))
    if n == 0:
        raise ValueError(f"load('tfds:{name}'): expected examples in split {split_name!r}, got 0")
    first = _inputs(read_records(src, [0]), x_key)
    chunks = (read_records(src, list(range(lo, min(lo + 4096, n)))) for lo in range(0, n, 4096))
    y = np.concatenate([_labels(c, y_key) for c in chunks])
    x = SourceArray(
        src, lambda records: _inputs(records, x_key), first.shape[1:], first.dtype, np.arange(n)
    )
    return Dataset(x, y)


def load_tfds(
    name: str,
    *,
    seed: int,
    val_fraction: float,
    data_dir: str | None,
    download: bool,
    train_split: str,
    test_split: str,
    val_split: str | None,
    max_examples: int | None,
    stream: bool = False,
) -> Splits:
    """Load a supervised TFDS dataset, already prepared on disk, as train/val/test splits.

    Chapter 9: the TFDS ``train_split`` becomes training data; the validation set is either the
    TFDS ``val_split`` or a stratified ``val_fraction`` carved from training with ``seed``
    (:func:`~jaxnn.data.splits.split`); the TFDS ``test_split`` becomes the sealed test set.
    ``uint8`` inputs are scaled to float32 in [0, 1]; labels become int32. This is the entry
    ``tfds:<name>`` of :data:`jaxnn.data.datasets.SOURCES`, through which ``jaxnn.data.load``
    checks the options and fills in their defaults.

    Args:
      name: the TFDS name, e.g. ``"mnist"`` (optionally ``"mnist:3.0.1"``).
      seed: seed of the validation split.
      val_fraction: share of training data held out when ``val_split`` is None.
      data_dir: TFDS data directory (TFDS default, ``~/tensorflow_datasets``, if None).
      download: allow TFDS to download and prepare the data (needs network).
      train_split, test_split, val_split: TFDS split names.
      max_examples: read at most this many examples of each split (quick experiments).
      stream: keep the inputs in the prepared files and decode each batch when it is read
        (:class:`~jaxnn.data.streaming.SourceArray`), for a dataset larger than memory; only
        the labels are read up front, in one pass.

    Returns:
      :class:`~jaxnn.data.Splits`.

    Raises:
      ValueError: for an unknown dataset, a dataset without ``(input, label)`` supervised keys,
        or a dataset not prepared in ``data_dir`` (the message says how to prepare it).
    """
    tfds = _import_tfds()
    builder = _builder(tfds, name, data_dir)
    x_key, y_key = _supervised_keys(name, builder)
    split_names = [train_split, test_split] + ([val_split] if val_split else [])
    try:
        sources = tfds.data_source(
            name, split=split_names, data_dir=data_dir, download=bool(download), try_gcs=False
        )
    except Exception as e:
        raise UserError(_not_prepared(name, split_names, data_dir, e)) from e
    sets = [
        _streamed(name, part, src, max_examples, x_key, y_key)
        if stream
        else Dataset(*_to_arrays(_read(name, part, src, max_examples), x_key, y_key))
        for part, src in zip(split_names, sources, strict=True)
    ]
    info = _info(name, builder, y_key, sets[0], train_split, test_split)
    train, val, test = split(
        f"load('tfds:{name}')",
        sets[0],
        test=sets[1],
        val=sets[2] if val_split else None,
        seed=seed,
        val_fraction=val_fraction,
        stratify=True,
    )
    return Splits(train, val, test, info)


def _builder(tfds, name: str, data_dir):
    try:
        return tfds.builder(name, data_dir=data_dir)
    except Exception as e:  # DatasetNotFoundError and friends
        raise ValueError(f"load('tfds:{name}'): unknown or unusable TFDS dataset: {e}"[:600]) from e


def _supervised_keys(name: str, builder) -> tuple[str, str]:
    keys = builder.info.supervised_keys
    if not keys or len(keys) != 2 or not all(isinstance(k, str) for k in keys):
        raise ValueError(
            f"load('tfds:{name}'): expected a supervised dataset with (input, label) keys, got "
            f"supervised_keys={keys}"
        )
    return keys[0], keys[1]


def _read(name: str, split_name: str, src, max_examples) -> list:
    """The first ``max_examples`` examples of one split (all of them if None)."""
    n = len(src) if max_examples is None else min(len(src), int(max_examples))
    if n == 0:
        raise ValueError(f"load('tfds:{name}'): expected examples in split {split_name!r}, got 0")
    return read_records(src, list(range(n)))  # one batched read where the source has one


def _info(name, builder, y_key, train: Dataset, train_split, test_split) -> DatasetInfo:
    """What the dataset is, from its TFDS metadata and the training split (all of it)."""
    label = builder.info.features[y_key]
    names = getattr(label, "names", None)
    num_classes = int(getattr(label, "num_classes", int(train.y.max()) + 1))
    shape = train.x.shape[1:]
    return DatasetInfo(
        name=f"tfds:{name}",
        task="classification",
        input_shape=shape,
        num_classes=num_classes,
        class_names=tuple(names) if names else None,
        modality="image" if len(shape) == 3 else ("tabular" if len(shape) == 1 else "signal"),
        description=f"TensorFlow Datasets {name} ({train_split}/{test_split})",
    )
