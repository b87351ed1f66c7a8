"""Normalization and batching — Chapter 9: the pipeline that delivers batches for training.

- :class:`Standardizer` and :func:`standardize`: ``(x - mean) / std`` with statistics computed on
  the training split only, then applied unchanged to validation and test (no leakage); the
  statistics save to a JSON-able dict (:meth:`Standardizer.to_json`) and
  :func:`apply_statistics` applies saved ones to new inputs at prediction time.
- :func:`epoch_permutation`, :func:`num_batches`, :func:`batches`: shuffled training batches in
  which every example appears exactly once per epoch, deterministic from ``(seed, epoch)`` and
  resumable mid-epoch with ``start``.
- :class:`EpochPlan` and :func:`epoch_plan`: the example indices of one epoch's training steps,
  the last, smaller batch kept (padded with weight-0 rows to a size the devices divide) or
  dropped.
- :func:`eval_batches`: fixed-shape evaluation batches with a weight mask, so every example counts
  exactly once and ``jax.jit`` compiles a single shape.
- :func:`prefetch_to_device`: moves upcoming batches to the device on a background thread.
"""

from __future__ import annotations

import dataclasses
import queue
import threading
from collections.abc import Iterator

import jax
import numpy as np

from jaxnn._checks import check_positive_int
from jaxnn.data import streaming
from jaxnn.data.containers import Dataset, Splits

__all__ = [
    "Standardizer",
    "standardize",
    "apply_statistics",
    "epoch_permutation",
    "num_batches",
    "batches",
    "EpochPlan",
    "epoch_plan",
    "steps_per_epoch",
    "first_steps",
    "eval_batches",
    "prefetch_to_device",
]

_PER = ("feature", "channel", "none")


@dataclasses.dataclass(frozen=True, eq=False)
class Standardizer:
    """Per-feature or per-channel standardization ``x -> (x - mean) / std``.

    Chapter 9: normalization rescales features to comparable ranges; its statistics come from
    the training split only, because validation or test statistics would leak information.

    Attributes:
      mean: the training mean, shape ``input_shape`` (per feature) or ``(C,)`` (per channel).
      std: the training standard deviation, same shape; entries below ``eps`` (constant
        features such as MNIST border pixels) are replaced by 1, so they are centred, not blown up.
      per: ``"feature"``, ``"channel"``, or ``"none"`` for the identity (token ids pass unchanged).
    """

    mean: np.ndarray
    std: np.ndarray
    per: str = "feature"

    @classmethod
    def fit(cls, x, *, per: str = "feature", eps: float = 1e-6) -> Standardizer:
        """Compute the statistics of training inputs ``x`` (N, ...).

        ``per="feature"``: ``mean = x.mean(0)``, one value per input coordinate.
        ``per="channel"``: one value per last-axis channel, averaged over examples and all other
        axes (images (N, H, W, C) -> (C,)).
        """
        if per not in ("feature", "channel"):
            raise ValueError(f"Standardizer.fit: expected per 'feature' or 'channel', got {per!r}")
        if streaming.is_lazy(x):  # a pack on disk: one pass over its chunks
            mean, std = streaming.streaming_statistics(x, per=per, eps=eps)
            return cls(mean, std, per)
        x = np.asarray(x)
        if x.ndim < 2 or len(x) == 0:
            raise ValueError(
                f"Standardizer.fit: expected a non-empty batch (N, ...) of rank >= 2, got {x.shape}"
            )
        if not np.issubdtype(x.dtype, np.floating):
            raise ValueError(f"Standardizer.fit: expected floating-point inputs, got {x.dtype}")
        axes = 0 if per == "feature" else tuple(range(x.ndim - 1))
        mean = x.mean(axis=axes, dtype=np.float64)
        std = x.std(axis=axes, dtype=np.float64)
        if not (np.isfinite(mean).all() and np.isfinite(std).all()):
            raise ValueError("Standardizer.fit: expected finite inputs, got NaN/inf statistics")
        std = np.where(std < eps, 1.0, std)
        return cls(mean.astype(x.dtype), std.astype(x.dtype), per)

    @classmethod
    def identity(cls) -> Standardizer:
        """The do-nothing standardizer (used for token ids)."""
        return cls(np.zeros((), np.float32), np.ones((), np.float32), "none")

    def to_json(self) -> dict:
        """The statistics as a JSON-able dict, rebuilt exactly by :meth:`from_json`.

        ``{"per": ..., "dtype": "float32", "shape": [...], "mean": [...], "std": [...]}``: the
        arrays as nested lists of floats (a float32 value survives the float64 round trip).
        """
        return {
            "per": self.per,
            "dtype": str(np.asarray(self.mean).dtype),
            "shape": list(np.shape(self.mean)),
            "mean": np.asarray(self.mean).tolist(),
            "std": np.asarray(self.std).tolist(),
        }

    @classmethod
    def from_json(cls, data: dict) -> Standardizer:
        """Rebuild a :class:`Standardizer` from :meth:`to_json` output.

        Raises:
          ValueError: if a field is missing or malformed (a run directory is untrusted input).
        """
        where = "Standardizer.from_json"
        if not isinstance(data, dict) or not {"per", "dtype", "shape", "mean", "std"} <= set(data):
            raise ValueError(
                f"{where}: expected a dict with per, dtype, shape, mean and std, got "
                f"{sorted(data) if isinstance(data, dict) else type(data).__name__}"
            )
        if data["per"] not in _PER or data["dtype"] not in ("float16", "float32", "float64"):
            raise ValueError(
                f"{where}: expected per in {_PER} and a float dtype, got {data['per']!r}, "
                f"{data['dtype']!r}"
            )
        mean, std = (_stat_array(where, data, k) for k in ("mean", "std"))
        if not (np.all(std > 0) and np.isfinite(mean).all() and np.isfinite(std).all()):
            raise ValueError(f"{where}: expected finite mean and positive finite std")
        return cls(mean, std, data["per"])

    def apply(self, x):
        """Return ``(x - mean) / std`` (NumPy or JAX arrays; ``x`` unchanged when ``per="none"``).

        Raises:
          ValueError: if the trailing axes of ``x`` do not match the statistics.
        """
        if self.per == "none":
            return x
        want = np.shape(self.mean)
        shape = x.shape if streaming.is_lazy(x) else np.shape(x)
        if shape[len(shape) - len(want) :] != want:
            raise ValueError(
                f"Standardizer.apply: expected inputs ending in shape {want} ({self.per} "
                f"statistics), got shape {np.shape(x)}"
            )
        if streaming.is_lazy(x):  # standardized batch by batch as its rows are read
            mean, std = self.mean, self.std
            dtype = np.result_type(x.dtype, mean.dtype)

            def rows_standardized(rows):  # rows: a new array; in place when the dtype allows
                if rows.dtype != dtype or not rows.flags.writeable:
                    return (rows - mean) / std
                return np.divide(np.subtract(rows, mean, out=rows), std, out=rows)

            return x.map(rows_standardized, dtype)
        return (x - self.mean) / self.std


def _stat_array(where: str, data: dict, key: str) -> np.ndarray:
    try:
        arr = np.asarray(data[key], dtype=data["dtype"])
    except (TypeError, ValueError):
        raise ValueError(f"{where}: expected {key} to be numbers, got {data[key]!r:.60}") from None
    if list(arr.shape) != list(data["shape"]):
        raise ValueError(
            f"{where}: expected {key} of shape {data['shape']}, got shape {list(arr.shape)}"
        )
    return arr


def apply_statistics(statistics: dict, x) -> np.ndarray:
    """Standardize new inputs ``x`` (N, ...) with saved training statistics.

    Chapter 5 and 9: at inference the model sees inputs transformed exactly as its training data
    was, ``(x - mean) / std`` with the training split's statistics, never statistics of the new
    data. ``statistics`` is :meth:`Standardizer.to_json` output (e.g. read back from a run
    directory); ``x`` is cast to the statistics' dtype.

    Raises:
      ValueError: if the statistics are malformed or ``x`` does not end in their shape.
    """
    st = Standardizer.from_json(statistics)
    if st.per == "none":
        return np.asarray(x)
    return st.apply(np.asarray(x, dtype=st.mean.dtype))


def _default_per(splits: Splits) -> str:
    if splits.info.task == "language_model":
        return "none"
    return "channel" if splits.info.modality == "image" else "feature"


def standardize(splits: Splits, *, per: str | None = None) -> tuple[Splits, Standardizer]:
    """Fit a :class:`Standardizer` on ``splits.train`` and apply it to train, val and test.

    Chapter 9: compute normalization statistics only on training data; validation and the
    (still sealed) test set are transformed with the same training statistics.

    Args:
      splits: from :func:`jaxnn.data.load`.
      per: ``"feature"``, ``"channel"`` or ``"none"``; by default ``"channel"`` for images,
        ``"none"`` (identity) for language-model tokens and ``"feature"`` otherwise.

    Returns:
      ``(standardized splits, standardizer)``; the test set stays sealed and keeps its unseal
      record, and ``info.normalization`` holds the statistics (saved with a run for inference).
    """
    if not isinstance(splits, Splits):
        raise ValueError(f"standardize: expected Splits, got {type(splits).__name__}")
    per = _default_per(splits) if per is None else per
    if per not in _PER:
        raise ValueError(f"standardize: expected per in {_PER}, got {per!r}")
    if per == "none":
        st = Standardizer.identity()
        return splits.replace(info=splits.info.replace(normalization=st.to_json())), st
    st = Standardizer.fit(splits.train.x, per=per)

    def transform(ds: Dataset) -> Dataset:
        return Dataset(st.apply(ds.x), ds.y)

    out = splits.replace(
        train=transform(splits.train),
        val=transform(splits.val),
        test=splits.test.map(transform),
        info=splits.info.replace(normalization=st.to_json()),
    )
    return out, st


def epoch_permutation(n: int, *, seed: int, epoch: int) -> np.ndarray:
    """The order in which epoch ``epoch`` visits ``n`` examples, a function of ``(seed, epoch)``.

    Chapter 6: mini-batch SGD draws a fresh random order each epoch; deriving it from
    ``(seed, epoch)`` alone (``numpy.random.SeedSequence([seed, epoch])``) makes a resumed run
    visit the same order without storing any random state.

    Returns:
      int64 permutation of ``range(n)``.
    """
    n = check_positive_int("epoch_permutation", n, "n")
    for name, v in (("seed", seed), ("epoch", epoch)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:
            raise ValueError(
                f"epoch_permutation: expected {name} to be a non-negative int, got {v!r}"
            )
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), int(epoch)]))
    return rng.permutation(n)


def num_batches(n: int, batch_size: int, *, drop_remainder: bool) -> int:
    """Batches per epoch: ``floor(n / B)`` when dropping the remainder, else ``ceil(n / B)``."""
    n = check_positive_int("num_batches", n, "n")
    batch_size = check_positive_int("num_batches", batch_size, "batch_size")
    return n // batch_size if drop_remainder else -(-n // batch_size)


def batches(
    ds: Dataset,
    batch_size: int,
    *,
    seed: int,
    epoch: int,
    shuffle: bool = True,
    drop_remainder: bool = True,
    start: int = 0,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield the training batches ``(x (B, ...), y (B, ...))`` of one epoch.

    Chapter 9: each epoch visits every example exactly once, in the order
    :func:`epoch_permutation` gives (or in stored order when ``shuffle=False``). With
    ``drop_remainder=True`` the ``n mod B`` examples left at the end of the order are skipped this
    epoch (a different set each epoch) and every batch has the same shape.

    Args:
      ds: the training :class:`Dataset`.
      batch_size: examples per batch ``B``.
      seed: seed of the shuffling order.
      epoch: epoch number; with ``seed`` it fixes the order.
      shuffle: visit the examples in a random order.
      drop_remainder: skip the last, smaller batch.
      start: index of the first batch to yield, to resume exactly in the middle of an epoch.

    Raises:
      ValueError: if ``batch_size`` exceeds the split with ``drop_remainder`` (no batch at all), or
        ``start`` is outside ``[0, num_batches]``.
    """
    if not isinstance(ds, Dataset):
        raise ValueError(f"batches: expected a Dataset, got {type(ds).__name__}")
    batch_size = check_positive_int("batches", batch_size, "batch_size")
    n = len(ds)
    if drop_remainder and batch_size > n:
        raise ValueError(
            f"batches: expected batch_size <= {n} (the split size) with drop_remainder=True, "
            f"got batch_size {batch_size}"
        )
    total = num_batches(n, batch_size, drop_remainder=drop_remainder)
    is_int = isinstance(start, (int, np.integer)) and not isinstance(start, bool)
    if not is_int or not 0 <= start <= total:
        raise ValueError(f"batches: expected start in [0, {total}], got {start!r}")
    order = epoch_permutation(n, seed=seed, epoch=epoch) if shuffle else np.arange(n)
    return _batch_iter(ds, order, batch_size, int(start), total)


def _batch_iter(ds, order, batch_size, start, total):
    for b in range(start, total):
        idx = order[b * batch_size : (b + 1) * batch_size]  # (B,)
        yield ds.x[idx], ds.y[idx]


LAST_BATCH = ("train", "drop")


def steps_per_epoch(n: int, batch_size: int, last_batch: str = "train") -> int:
    """Training steps of an epoch over ``n`` examples: ``ceil(n / B)`` when the last, smaller
    batch is trained on (``last_batch="train"``), ``floor(n / B)`` when it is dropped."""
    if last_batch not in LAST_BATCH:
        raise ValueError(
            f"steps_per_epoch: expected last_batch in {LAST_BATCH}, got {last_batch!r}"
        )
    return num_batches(n, batch_size, drop_remainder=last_batch == "drop")


@dataclasses.dataclass(frozen=True)
class EpochPlan:
    """The example indices of one epoch's training steps.

    Attributes:
      full: int64 ``(S, B)``, the ``S = floor(n / B)`` full batches in visiting order.
      last: int64 ``(R,)``, the last batch (the ``n mod B`` examples left, then padding up to a
        multiple of the device count), or ``None`` when there is none or it is dropped.
      last_weight: float32 ``(R,)``: 1 for a real example of ``last``, 0 for a padded row.
    """

    full: np.ndarray
    last: np.ndarray | None
    last_weight: np.ndarray | None

    @property
    def steps(self) -> int:
        """Steps of the epoch."""
        return len(self.full) + (self.last is not None)

    @property
    def sizes(self) -> list[int]:
        """Real examples of each step, in order (they add up to ``n`` with the last batch)."""
        tail = [] if self.last_weight is None else [int(self.last_weight.sum())]
        return [self.full.shape[1]] * len(self.full) + tail


def epoch_plan(
    n: int, batch_size: int, *, seed: int, epoch: int, last_batch: str = "train", multiple: int = 1
) -> EpochPlan:
    """Split epoch ``epoch``'s order of ``n`` examples into steps (Chapters 6 and 9).

    The order is :func:`epoch_permutation`; the full batches are its consecutive runs of ``B``,
    exactly those :func:`batches` yields. With ``last_batch="train"`` the ``r = n mod B``
    examples left form one more, smaller step, so that every example is seen once per epoch
    (as Keras, PyTorch's ``DataLoader`` and Lightning do by default); its size is rounded up
    to a multiple of ``multiple`` (the devices of a mesh, which must divide a batch) with the
    first examples of the order, marked by weight 0 so that they add nothing to the update.
    With ``"drop"`` those ``r`` examples are skipped this epoch (a different set each epoch).

    Raises:
      ValueError: for ``batch_size > n`` (the loop clips it first) or a bad ``last_batch``.
    """
    n = check_positive_int("epoch_plan", n, "n")
    batch_size = check_positive_int("epoch_plan", batch_size, "batch_size")
    multiple = check_positive_int("epoch_plan", multiple, "multiple")
    if batch_size > n:
        raise ValueError(
            f"epoch_plan: expected batch_size <= {n} (the split size), got {batch_size}"
        )
    if last_batch not in LAST_BATCH:
        raise ValueError(f"epoch_plan: expected last_batch in {LAST_BATCH}, got {last_batch!r}")
    order = epoch_permutation(n, seed=seed, epoch=epoch)
    steps = n // batch_size
    full = order[: steps * batch_size].reshape(steps, batch_size)
    rest = order[steps * batch_size :]
    if last_batch == "drop" or len(rest) == 0:
        return EpochPlan(full, None, None)
    pad = -len(rest) % multiple
    last = np.concatenate([rest, order[:pad]])
    weight = np.concatenate([np.ones(len(rest), np.float32), np.zeros(pad, np.float32)])
    return EpochPlan(full, last, weight)


def first_steps(plan: EpochPlan, k: int) -> EpochPlan:
    """The first ``k`` steps of ``plan`` (all of it when it has no more): the last epoch of a
    run with an exact step count (``FitConfig.max_steps``) stops after them."""
    k = check_positive_int("first_steps", k, "k")
    if k >= plan.steps:
        return plan
    return EpochPlan(plan.full[:k], None, None)


def eval_batches(
    ds: Dataset, batch_size: int
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Yield ``(x (B, ...), y (B, ...), weight (B,))`` covering ``ds`` once, in stored order.

    Chapter 13: an evaluation metric is a weighted mean ``sum_i w_i m_i / sum_i w_i``. The last
    batch is padded up to ``B`` with copies of the first example and weight 0.0, real examples
    carry weight 1.0, so every example counts exactly once and ``jit`` sees one shape.
    """
    if not isinstance(ds, Dataset):
        raise ValueError(f"eval_batches: expected a Dataset, got {type(ds).__name__}")
    batch_size = check_positive_int("eval_batches", batch_size, "batch_size")
    return _eval_iter(ds, batch_size)


def _eval_iter(ds, batch_size):
    n = len(ds)
    for lo in range(0, n, batch_size):
        idx = np.arange(lo, lo + batch_size)  # (B,)
        weight = (idx < n).astype(np.float32)  # (B,)
        idx = np.where(idx < n, idx, 0)
        yield ds.x[idx], ds.y[idx], weight


_DONE = object()


@dataclasses.dataclass(frozen=True)
class _Failure:
    error: BaseException


class _Prefetcher:
    """Device-array iterator filled by a background thread; see :func:`prefetch_to_device`."""

    def __init__(self, iterator, size, sharding):
        self._queue: queue.Queue = queue.Queue(maxsize=size)
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._fill, args=(iter(iterator), sharding), daemon=True
        )
        self._thread.start()

    def _put(self, item) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _fill(self, iterator, sharding):
        try:
            for item in iterator:
                if not self._put(jax.device_put(item, sharding)):
                    return
        except BaseException as e:  # handed to the consumer, raised there
            self._put(_Failure(e))
            return
        self._put(_DONE)

    def __iter__(self):
        return self

    def __next__(self):
        item = self._queue.get()
        if item is _DONE:
            self._queue.put(_DONE)  # stay exhausted
            raise StopIteration
        if isinstance(item, _Failure):
            self.close()
            self._queue.put_nowait(_DONE)  # later calls stop instead of waiting forever
            raise item.error
        return item

    def close(self) -> None:
        """Stop the background thread (also called when the consumer stops early)."""
        self._stop.set()

    def __del__(self):
        self._stop.set()


def prefetch_to_device(iterator, size: int = 2, sharding=None) -> Iterator:
    """Put the next ``size`` items of ``iterator`` on the device ahead of time.

    Chapter 15: the input pipeline should never be the bottleneck. A background thread pulls
    items (any pytree of arrays, e.g. ``(x, y)``) from ``iterator`` and calls
    ``jax.device_put(item, sharding)``, keeping up to ``size`` items ready while the accelerator
    runs the previous step. Exceptions from ``iterator`` are raised by the consumer.

    Args:
      iterator: an iterable of pytrees of arrays.
      size: number of items kept ready.
      sharding: a ``jax.sharding.Sharding`` (or device) to place items with; default device if None.

    Returns:
      An iterator yielding the same items as device arrays, in the same order; call ``.close()``
      to stop early.
    """
    size = check_positive_int("prefetch_to_device", size, "size")
    return _Prefetcher(iterator, size, sharding)
