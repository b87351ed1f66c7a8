"""Arrays whose rows are read when indexed — Chapter 9: a batch needs its rows, not the dataset.

:class:`LazyArray` is what a :class:`~jaxnn.data.Dataset` holds in place of a NumPy array when
its examples stay on disk: ``shape``, ``dtype``, ``len``, and ``x[indices]`` returns a NumPy
array of those rows. :class:`ShardedArray` reads memory-mapped shards (a pack,
:mod:`jaxnn.data.streaming`), :class:`SourceArray` decodes the records of a random-access source
(``tfds.data_source``, ArrayRecord), :meth:`LazyArray.take` selects rows without reading them (a
carved split) and :meth:`LazyArray.map` transforms each batch as it is read (standardization).
This module imports nothing of jaxnn, so the containers can know lazy arrays.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np

__all__ = ["LazyArray", "ShardedArray", "SourceArray", "is_lazy", "read_records"]

_CHUNK_BYTES = 64 << 20  # rows read at a time by a pass over a lazy array (chunks)


class LazyArray:
    """A read-only ``(N, ...)`` array whose rows are read when indexed.

    ``x[i]``, ``x[lo:hi]``, ``x[indices]`` and ``x[mask]`` return NumPy arrays (copies) of
    those rows; ``np.asarray(x)`` reads all of it. Subclasses implement :meth:`_gather` (and may
    implement :meth:`_rows`), each returning a new array the caller owns.
    """

    shape: tuple[int, ...]
    dtype: np.dtype

    @property
    def ndim(self) -> int:
        """Number of axes, the batch axis included."""
        return len(self.shape)

    @property
    def size(self) -> int:
        """Number of elements (as NumPy's ``size``)."""
        return int(np.prod(self.shape))

    @property
    def nbytes(self) -> int:
        """Bytes the whole array would take in memory (it takes none until read)."""
        return self.size * self.dtype.itemsize

    def __len__(self) -> int:
        return self.shape[0]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(shape={self.shape}, dtype={self.dtype})"

    def _gather(self, idx: np.ndarray) -> np.ndarray:  # idx: int64 (K,), each in [0, N)
        raise NotImplementedError

    def _rows(self, lo: int, hi: int) -> np.ndarray:
        """Rows ``lo:hi`` (a contiguous read where the storage allows one)."""
        return self._gather(np.arange(lo, hi, dtype=np.int64))

    def __getitem__(self, key) -> np.ndarray:
        n = len(self)
        if isinstance(key, (int, np.integer)) and not isinstance(key, bool):
            i = int(key) + n if key < 0 else int(key)
            if not 0 <= i < n:
                raise IndexError(f"index {key} is out of bounds for axis 0 with size {n}")
            return self._rows(i, i + 1)[0]
        if isinstance(key, slice):
            lo, hi, step = key.indices(n)
            if step == 1:
                return self._rows(lo, max(lo, hi))
            key = np.arange(lo, hi, step)
        idx = _indices(key, n)
        return self._gather(idx.reshape(-1)).reshape(idx.shape + self.shape[1:])

    def __array__(self, dtype=None, copy=None):
        out = self._rows(0, len(self))
        return out if dtype is None else out.astype(dtype)

    def chunks(self, rows: int | None = None) -> Iterator[np.ndarray]:
        """Yield consecutive blocks of rows covering the array once (about 64 MB each)."""
        row_bytes = max(1, self.nbytes // max(1, len(self)))
        rows = rows or max(1, _CHUNK_BYTES // row_bytes)
        for lo in range(0, len(self), rows):
            yield self._rows(lo, min(lo + rows, len(self)))

    def take(self, indices) -> LazyArray:
        """The rows ``indices`` (in that order) as a lazy view; nothing is read."""
        idx = np.asarray(indices)
        if idx.ndim != 1 or not np.issubdtype(idx.dtype, np.integer):
            raise ValueError(f"take: expected 1-D integer indices, got {idx.dtype} {idx.shape}")
        if idx.size and (idx.min() < 0 or idx.max() >= len(self)):
            raise ValueError(f"take: expected indices in [0, {len(self)}), got values outside")
        return _Indexed(self, idx.astype(np.int64))

    def map(self, fn: Callable[[np.ndarray], np.ndarray], dtype) -> LazyArray:
        """A lazy view whose rows are ``fn(rows)``, of the same shape and dtype ``dtype``;
        ``rows`` is a new array, which ``fn`` may overwrite."""
        return _Mapped(self, fn, np.dtype(dtype))


class SourceArray(LazyArray):
    """The examples of a random-access source, decoded when indexed.

    A source is anything with ``len(source)`` and ``source[i]`` (and, read in one call when it
    has it, ``source.__getitems__(indices)``): grain's ``RandomAccessDataSource`` protocol, which
    ``tfds.data_source`` and ``grain.sources.ArrayRecordDataSource`` follow.

    Args:
      source: the random-access source.
      decode: ``decode(records) -> ndarray (K, *shape)`` of ``dtype``, from the list of records.
      shape: one example's shape.
      dtype: the decoded dtype.
      indices: the records to expose, in order (all of them if None).
    """

    def __init__(self, source, decode, shape, dtype, indices=None):
        self._source, self._decode = source, decode
        self._indices = np.arange(len(source)) if indices is None else np.asarray(indices)
        self.shape, self.dtype = (len(self._indices), *shape), np.dtype(dtype)

    def _gather(self, idx):
        records = read_records(self._source, self._indices[idx].tolist())
        rows = np.asarray(self._decode(records), self.dtype)
        if rows.shape != (len(idx), *self.shape[1:]):
            raise ValueError(
                f"SourceArray: expected examples of shape {self.shape[1:]}, got a batch of "
                f"shape {rows.shape} (the source's examples differ in shape)"
            )
        return rows


def read_records(source, indices: list) -> list:
    """``[source[i] for i in indices]``, in one batched read where the source has one."""
    getitems = getattr(source, "__getitems__", None)
    if getitems is not None:
        try:
            return list(getitems(indices))
        except (AttributeError, TypeError, NotImplementedError):
            pass  # sources whose batched read is missing or broken (e.g. TFDS mocks)
    return [source[i] for i in indices]


def _indices(key, n: int) -> np.ndarray:
    """Integer indices in ``[0, n)`` (int64, the shape of ``key``) from indices or a mask."""
    idx = np.asarray(key)
    if idx.dtype == bool:
        if idx.shape != (n,):
            raise IndexError(f"expected a boolean mask of shape ({n},), got {idx.shape}")
        idx = np.flatnonzero(idx)
    if not np.issubdtype(idx.dtype, np.integer):
        raise IndexError(f"expected integer indices, a slice or a mask, got {idx.dtype}")
    idx = np.where(idx < 0, idx + n, idx).astype(np.int64)
    if idx.size and (idx.min() < 0 or idx.max() >= n):
        raise IndexError(f"indices out of bounds for axis 0 with size {n}")
    return idx


def is_lazy(x) -> bool:
    """Whether ``x`` is a :class:`LazyArray` (rows read on demand) rather than in memory."""
    return isinstance(x, LazyArray)


class _Indexed(LazyArray):
    def __init__(self, base: LazyArray, indices: np.ndarray):
        self._base, self._indices = base, indices
        self.shape, self.dtype = (len(indices), *base.shape[1:]), base.dtype

    def _gather(self, idx):
        return self._base._gather(self._indices[idx])


class _Mapped(LazyArray):
    def __init__(self, base: LazyArray, fn, dtype: np.dtype):
        self._base, self._fn = base, fn
        self.shape, self.dtype = base.shape, dtype

    def _gather(self, idx):
        return np.asarray(self._fn(self._base._gather(idx)), self.dtype)

    def _rows(self, lo, hi):
        return np.asarray(self._fn(self._base._rows(lo, hi)), self.dtype)


class ShardedArray(LazyArray):
    """Memory-mapped ``.npy`` shards, read as one array concatenated along axis 0.

    Args:
      shards: the arrays (``numpy.memmap`` or any ``ndarray``) with one row shape and dtype.

    Raises:
      ValueError: for no shards, or shards whose row shapes or dtypes differ.
    """

    def __init__(self, shards):
        shards = list(shards)
        if not shards:
            raise ValueError("ShardedArray: expected at least one shard, got none")
        rows = {(s.shape[1:], s.dtype) for s in shards}
        if len(rows) != 1 or shards[0].ndim < 1:
            raise ValueError(f"ShardedArray: expected one row shape and dtype, got {rows}")
        # plain ndarray views of mapped files: indexing a numpy.memmap costs more per call
        self._shards = [s.view(np.ndarray) if isinstance(s, np.memmap) else s for s in shards]
        sizes = np.asarray([len(s) for s in shards], np.int64)
        self._ends = np.cumsum(sizes)  # (S,)
        self._starts = self._ends - sizes
        self.shape = (int(self._ends[-1]), *shards[0].shape[1:])
        self.dtype = shards[0].dtype

    def _gather(self, idx):
        # one sort: each shard's rows become one run of the sorted indices, read front to back
        # with one take into the output (plain ndarray views: no memmap bookkeeping per call)
        order = np.argsort(idx, kind="stable")  # (K,)
        ordered = idx[order]
        bounds = np.searchsorted(ordered, self._starts[1:])  # (S-1,) run ends
        out = np.empty((len(idx), *self.shape[1:]), self.dtype)
        lo = 0
        for s, hi in enumerate((*bounds.tolist(), len(idx))):
            if hi > lo:
                local = ordered[lo:hi] - self._starts[s]
                np.take(self._shards[s], local, axis=0, out=out[lo:hi])
            lo = hi
        result = np.empty_like(out)
        result[order] = out
        return result

    def _rows(self, lo, hi):
        parts = []
        for s, shard in enumerate(self._shards):
            a, b = max(lo, int(self._starts[s])), min(hi, int(self._ends[s]))
            if a < b:
                parts.append(np.asarray(shard[a - self._starts[s] : b - self._starts[s]]))
        if not parts:
            return np.empty((0, *self.shape[1:]), self.dtype)
        return np.concatenate(parts) if len(parts) > 1 else np.array(parts[0])
