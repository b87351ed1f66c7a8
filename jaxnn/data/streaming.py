"""Datasets larger than memory — Chapter 9: a pipeline reads the examples a step needs, not all.

A *pack* is a directory of memory-mapped ``.npy`` shards that :func:`load_pack` opens as
:class:`~jaxnn.data.Splits` whose example arrays stay on disk: each batch reads its rows through
the page cache, so a training run's anonymous memory does not grow with the dataset (file pages
read through a memory map belong to the operating system's cache, which gives them back under
pressure). The targets, one number or label per example, are read into memory.

- :class:`LazyArray`: the read-only, array-like view the splits hold (``shape``, ``dtype``,
  ``len``, ``x[indices]`` returns a NumPy array of those rows). :class:`ShardedArray` reads
  shards, :meth:`LazyArray.take` selects rows without reading them (a carved validation split),
  :meth:`LazyArray.map` transforms each batch as it is read (standardization), and
  :class:`SourceArray` decodes the records of a random-access source (grain's protocol:
  ``tfds.data_source``, ArrayRecord), as ``tfds:<name>`` with ``stream=True`` does.
- :func:`streaming_statistics`: the training split's normalization statistics in one pass over
  fixed-size chunks (float64 moments combined across chunks exactly, Chan et al.'s update), so
  a set of any size is standardized without loading it.
- :class:`PackWriter` and :func:`pack`: write a pack, chunk by chunk (a generator of data that
  never fits in memory) or from any :class:`~jaxnn.data.Splits` (``jaxnn pack`` packs a user's
  CSV, ``.npz``, image folder or text this way, with the splits ``jaxnn.data.load`` carves).

The layout, each file a plain ``.npy`` array (C order, no pickles)::

    DIR/jaxnn-pack.json          what the data is (task, shapes, classes, tokenizer) and, per
                                 split, its shards with their rows and sha256; written last
    DIR/train-x-00000.npy ...    examples (rows, *input_shape), about 256 MB each by default
    DIR/train-y.npy              targets (rows,) or (rows, outputs)
    DIR/val-..., DIR/test-...    the same for validation and test, if packed

A pack without validation or test shards has them carved from its training split by
:func:`jaxnn.data.splits.split`, as any source that carries no split; the carved parts are
index views, nothing is copied. The order of training batches is a function of ``(seed,
epoch)`` (:func:`jaxnn.data.pipeline.epoch_plan`), so the iterator's whole state is the step
counter a checkpoint already holds: a resumed run reads exactly the batches an uninterrupted one
would. A pack is untrusted input: its manifest names only files of the layout above, every file
is opened without following links, and each shard's header must match the manifest.
"""

from __future__ import annotations

import hashlib
import json
import mmap as mmap_lib
import os
import re
from pathlib import Path

import numpy as np

from jaxnn import _contained
from jaxnn.data import snapshot
from jaxnn.data.containers import Dataset, DatasetInfo, Splits
from jaxnn.data.lazy import LazyArray, ShardedArray, SourceArray, is_lazy, read_records
from jaxnn.errors import UserError

__all__ = [
    "MANIFEST",
    "STORAGES",
    "LazyArray",
    "ShardedArray",
    "SourceArray",
    "is_lazy",
    "read_records",
    "streaming_statistics",
    "PackWriter",
    "pack",
    "load_pack",
    "is_pack",
    "pack_sha256",
]

#: the manifest's file name inside a pack directory.
MANIFEST = "jaxnn-pack.json"
_FORMAT, _VERSION = "jaxnn-pack", 1
_PARTS = ("train", "val", "test")
_FILE = re.compile(r"^(train|val|test)-(x-[0-9]{5}\.(npy|array_record)|y\.npy)$")
#: how a pack stores its examples: .npy shards (memory-mapped) or ArrayRecord files (a record
#: per example, read through ``array_record``'s random-access data source, grain's protocol)
STORAGES = ("npy", "arrayrecord")
_SUFFIX = {"npy": ".npy", "arrayrecord": ".array_record"}


# ---------------------------------------------------------------------------------------------
# Statistics in one pass


def _moments(chunk: np.ndarray, axes) -> tuple[int, np.ndarray, np.ndarray]:
    """``(count, mean, M2)`` of ``chunk`` over ``axes`` in float64 (M2: summed squared
    deviations from the chunk's mean)."""
    c = chunk.astype(np.float64)
    count = int(np.prod([chunk.shape[a] for a in axes]))
    mean = c.mean(axis=axes)
    return count, mean, ((c - mean) ** 2).sum(axis=axes)


def _combine(a, b):
    """Chan et al.'s exact merge of two ``(count, mean, M2)`` moment triples."""
    (na, ma, m2a), (nb, mb, m2b) = a, b
    n = na + nb
    delta = mb - ma
    return n, ma + delta * (nb / n), m2a + m2b + delta**2 * (na * nb / n)


def streaming_statistics(x, *, per: str = "feature", eps: float = 1e-6, chunk_rows=None):
    """The standardization statistics ``(mean, std)`` of ``x`` from one pass over its chunks.

    Chapter 9: the mean and standard deviation of the training split, computed without holding
    it: each chunk's float64 moments are merged exactly into the running ones, so the result
    equals the in-memory statistics to float64 rounding. ``x`` is a :class:`LazyArray` (or any
    array); ``per`` is ``"feature"`` or ``"channel"`` as for ``Standardizer.fit``;
    ``chunk_rows`` rows are read at a time (about 64 MB by default). The arrays have ``x``'s
    dtype, with a std below ``eps`` replaced by 1; ``Standardizer.fit`` of a lazy array wraps
    them.

    Raises:
      ValueError: for a bad ``per``, integer inputs, or NaN/infinite values (naming the rows).
    """
    _check_statistics_inputs(x, per)
    axes = (0,) if per == "feature" else tuple(range(x.ndim - 1))
    total, lo = None, 0
    for chunk in (x if is_lazy(x) else _InMemory(x)).chunks(chunk_rows):
        if not np.isfinite(chunk).all():
            raise ValueError(
                f"streaming_statistics: expected finite inputs, got NaN/inf in rows "
                f"{lo}..{lo + len(chunk) - 1}"
            )
        part = _moments(chunk, axes)
        total = part if total is None else _combine(total, part)
        lo += len(chunk)
    assert total is not None  # a non-empty x has a chunk
    n, mean, m2 = total
    std = np.sqrt(m2 / n)
    std = np.where(std < eps, 1.0, std)
    return mean.astype(x.dtype), std.astype(x.dtype)


def _check_statistics_inputs(x, per: str) -> None:
    if per not in ("feature", "channel"):
        raise ValueError(f"streaming_statistics: expected per 'feature' or 'channel', got {per!r}")
    if not np.issubdtype(x.dtype, np.floating) or len(x) == 0 or x.ndim < 2:
        raise ValueError(
            f"streaming_statistics: expected non-empty floating-point inputs (N, ...), got "
            f"{x.dtype} {x.shape}"
        )


class _InMemory(LazyArray):
    def __init__(self, x):
        self._x = np.asarray(x)
        self.shape, self.dtype = self._x.shape, self._x.dtype

    def _gather(self, idx):
        return self._x[idx]

    def _rows(self, lo, hi):
        return np.array(self._x[lo:hi])


# ---------------------------------------------------------------------------------------------
# Writing a pack


class _HashingFile:
    """A binary file object that hashes what passes through it."""

    def __init__(self, f):
        self._f, self.digest = f, hashlib.sha256()

    def write(self, data) -> int:
        view = memoryview(data).cast("B")
        self.digest.update(view)
        return self._f.write(view)


def _write_npy(path: Path, array: np.ndarray) -> str:
    """Write ``array`` as a ``.npy`` file (replacing, never through a link); its sha256."""
    with _contained.replacing(path) as f:
        out = _HashingFile(f)
        np.lib.format.write_array(out, np.ascontiguousarray(array), allow_pickle=False)
    return out.digest.hexdigest()


def _checked_rows(part: str, x: np.ndarray, y: np.ndarray, row: tuple | None) -> tuple:
    """The row layout of ``x`` and ``y`` (shapes and dtypes), checked against an earlier one."""
    if part not in _PARTS:
        raise ValueError(f"PackWriter.add: expected part in {_PARTS}, got {part!r}")
    if x.ndim < 2 or len(x) != len(y) or len(x) == 0:
        raise ValueError(
            f"PackWriter.add: expected x (n, ...) and y (n, ...) with one n >= 1, got "
            f"shapes {x.shape} and {y.shape}"
        )
    if x.dtype.kind not in "biuf" or y.dtype.kind not in "biuf":
        raise ValueError(f"PackWriter.add: expected numeric arrays, got {x.dtype}, {y.dtype}")
    new = (x.shape[1:], x.dtype, y.shape[1:], y.dtype)
    if row is not None and new != row:
        raise ValueError(f"PackWriter.add: expected rows like {row}, got {new}")
    return new


def _array_record():
    try:
        from array_record.python import array_record_data_source, array_record_module
    except ImportError:
        raise UserError(
            "an ArrayRecord pack needs the array-record package (it comes with "
            "tensorflow-datasets): pip install array-record"
        ) from None
    return array_record_module, array_record_data_source


def _write_records(path: Path, block: np.ndarray) -> str:
    """Write ``block``'s rows as one ArrayRecord file, a record of raw C-order bytes per row,
    under a new name in the folder renamed into place (never through a link); its sha256."""
    module, _ = _array_record()
    with _contained.replacing_name(path) as tmp:
        writer = module.ArrayRecordWriter(str(tmp), "group_size:1")
        for row in np.ascontiguousarray(block):
            writer.write(row.tobytes())
        writer.close()
    return _contained.file_sha256(path)


class PackWriter:
    """Write a pack chunk by chunk: ``add(part, x, y)`` as often as needed, then ``close(info)``.

    Rows of a part go into shards of about ``shard_bytes`` in the order they are added; the
    manifest, written by :meth:`close`, is what makes the directory a pack (a writer that stops
    early leaves shards and no manifest, which :func:`load_pack` refuses).

    Args:
      out: the pack directory: made if missing, and it must hold no pack yet.
      shard_bytes: bytes of examples per shard (256 MB by default).
      storage: ``"npy"`` (memory-mapped shards, the fastest to read) or ``"arrayrecord"``
        (ArrayRecord files, one record per example, for tools of the grain and TFDS world).

    Raises:
      UserError: if ``out`` is a link, a file, or already holds a manifest.
    """

    def __init__(self, out, *, shard_bytes: int = 256 << 20, storage: str = "npy"):
        if isinstance(shard_bytes, bool) or not isinstance(shard_bytes, int) or shard_bytes < 1:
            raise ValueError(f"PackWriter: expected shard_bytes >= 1, got {shard_bytes!r}")
        if storage not in STORAGES:
            raise ValueError(f"PackWriter: expected storage in {STORAGES}, got {storage!r}")
        self._storage = storage
        self.out = _contained.ensure_dir("pack", Path(out))
        if os.path.lexists(self.out / MANIFEST):
            raise UserError(f"pack: {self.out} already holds a pack; choose an empty directory")
        self._shard_bytes = shard_bytes
        self._pending: dict[str, list[np.ndarray]] = {p: [] for p in _PARTS}
        self._pending_rows = dict.fromkeys(_PARTS, 0)
        self._shards: dict[str, list[dict]] = {p: [] for p in _PARTS}
        self._ys: dict[str, list[np.ndarray]] = {p: [] for p in _PARTS}
        self._row: tuple | None = None

    def add(self, part: str, x, y) -> None:
        """Append examples ``x`` (n, ...) and targets ``y`` (n, ...) to split ``part``."""
        x, y = np.asarray(x), np.asarray(y)
        self._row = _checked_rows(part, x, y, self._row)
        self._ys[part].append(y)
        per_shard = max(1, self._shard_bytes // max(1, x[0].nbytes))
        while len(x):
            room = per_shard - self._pending_rows[part]
            self._pending[part].append(x[:room])
            self._pending_rows[part] += len(x[:room])
            x = x[room:]
            if self._pending_rows[part] >= per_shard:
                self._flush(part)

    def _flush(self, part: str) -> None:
        if not self._pending_rows[part]:
            return
        block = np.concatenate(self._pending[part])
        name = f"{part}-x-{len(self._shards[part]):05d}{_SUFFIX[self._storage]}"
        write = _write_npy if self._storage == "npy" else _write_records
        digest = write(self.out / name, block)
        self._shards[part].append({"file": name, "rows": len(block), "sha256": digest})
        self._pending[part], self._pending_rows[part] = [], 0

    def close(self, info: DatasetInfo) -> Path:
        """Write the last shards, the targets and the manifest; returns the manifest's path.

        Raises:
          ValueError: if no training rows were added, or ``info`` disagrees with the rows.
        """
        for part in _PARTS:
            self._flush(part)
        if not self._shards["train"] or self._row is None:
            raise ValueError("PackWriter.close: expected training rows, got none")
        if tuple(info.input_shape) != tuple(self._row[0]):
            raise ValueError(
                f"PackWriter.close: info.input_shape {info.input_shape} differs from the rows' "
                f"{self._row[0]}"
            )
        splits = {}
        for part in _PARTS:
            if not self._shards[part]:
                continue
            name = f"{part}-y.npy"
            digest = _write_npy(self.out / name, np.concatenate(self._ys[part]))
            rows = sum(s["rows"] for s in self._shards[part])
            splits[part] = {"rows": rows, "x": self._shards[part],
                            "y": {"file": name, "sha256": digest}}  # fmt: skip
        manifest = {
            "format": _FORMAT,
            "version": _VERSION,
            "info": json.loads(snapshot.info_json(info)),
            "dtype": str(self._row[1]),
            "storage": self._storage,
            "splits": splits,
        }
        path = self.out / MANIFEST
        _contained.write_replacing(path, (json.dumps(manifest, indent=1) + "\n").encode())
        return path


def pack(
    splits: Splits, out, *, shard_bytes: int = 256 << 20, storage: str = "npy", progress=None
) -> Path:
    """Write ``splits`` (train, validation and test, as :func:`jaxnn.data.load` carved them) as
    a pack at ``out``; returns the manifest's path.

    Chapter 9: packing fixes the splits once, so every run that trains on the pack sees the
    same train, validation and test examples. The test split is copied without being unsealed
    (as a run's data snapshot copies it). ``progress(rows)``, if given, is called after each
    chunk written.
    """
    if not isinstance(splits, Splits):
        raise ValueError(f"pack: expected Splits, got {type(splits).__name__}")
    writer = PackWriter(out, shard_bytes=shard_bytes, storage=storage)
    for part, ds in snapshot.split_parts(splits).items():
        for lo in range(0, len(ds), 4096):
            writer.add(part, ds.x[lo : lo + 4096], ds.y[lo : lo + 4096])
            if progress is not None:
                progress(min(4096, len(ds) - lo))
    return writer.close(splits.info)


# ---------------------------------------------------------------------------------------------
# Reading a pack


def is_pack(path) -> bool:
    """Whether the directory ``path`` holds a pack manifest (a link there does not count)."""
    p = Path(path) / MANIFEST
    return os.path.lexists(p) and not os.path.islink(p)


def _manifest_bytes(root: Path) -> bytes:
    where = f"pack:{root}"
    if not root.is_dir() or os.path.islink(root):
        what = "not found" if not os.path.lexists(root) else "not a directory"
        raise UserError(f"{where}: {what}; expected a directory written by `jaxnn pack`")
    try:
        return _contained.read_bytes(root / MANIFEST, name=where)
    except FileNotFoundError:
        raise UserError(
            f"{where}: holds no {MANIFEST}; expected a directory written by `jaxnn pack` (a pack "
            "that stopped before its manifest was written is incomplete: pack it again)"
        ) from None


def pack_sha256(path) -> str:
    """The fingerprint of a pack: the sha256 of its manifest, which records each shard's."""
    return hashlib.sha256(_manifest_bytes(Path(path).expanduser())).hexdigest()


def _manifest(root: Path) -> dict:
    where = f"pack:{root}"
    try:
        manifest = json.loads(_manifest_bytes(root))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise UserError(f"{where}: {MANIFEST} is not JSON ({e})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != _FORMAT:
        raise UserError(f"{where}: {MANIFEST} is not a jaxnn pack manifest")
    if manifest.get("version") != _VERSION:
        raise UserError(
            f"{where}: expected pack version {_VERSION}, got {manifest.get('version')!r}; "
            "pack it again with this jaxnn"
        )
    splits = manifest.get("splits")
    if not isinstance(splits, dict) or "train" not in splits or set(splits) - set(_PARTS):
        raise UserError(f"{where}: expected splits train (and val, test), got {splits!r:.80}")
    return manifest


def _file_name(where: str, entry) -> str:
    name = entry.get("file") if isinstance(entry, dict) else None
    if not isinstance(name, str) or not _FILE.match(name):
        raise UserError(
            f"{where}: expected a shard file named like train-x-00000.npy, got {name!r}"
        )
    return name


def _open_npy(
    root: Path, name: str, where: str, *, mmap: bool, populate: bool = False
) -> np.ndarray:
    """One ``.npy`` file of the pack, opened without following a link; memory-mapped if asked."""
    try:
        f = _contained.open_read(root / name, name=where)
    except FileNotFoundError:
        raise UserError(f"{where}: {name} is missing; the pack is incomplete") from None
    with f:
        try:
            version = np.lib.format.read_magic(f)
            read_header = {(1, 0): np.lib.format.read_array_header_1_0,
                           (2, 0): np.lib.format.read_array_header_2_0}[version]  # fmt: skip
            shape, fortran, dtype = read_header(f)
        except (ValueError, KeyError, OSError) as e:
            raise UserError(f"{where}: {name} is no .npy array ({e})") from None
        if fortran or dtype.hasobject or dtype.kind not in "biuf" or len(shape) < 1:
            raise UserError(f"{where}: {name}: expected a C-order array of numbers, got {dtype}")
        offset = f.tell()
        need = offset + int(np.prod(shape)) * dtype.itemsize
        if os.fstat(f.fileno()).st_size < need:
            raise UserError(f"{where}: {name} is truncated (expected {need} bytes)")
        if not mmap:
            return np.fromfile(f, dtype=dtype, count=int(np.prod(shape))).reshape(shape)
        if int(np.prod(shape)) == 0:
            return np.empty(shape, dtype)
        return _mapped(f, dtype, shape, offset, populate)


def _mapped(f, dtype, shape, offset: int, populate: bool) -> np.ndarray:
    """A read-only array over the file's pages. With ``populate`` (Linux's ``MAP_POPULATE``)
    the pages are mapped into the process at once, so a batch's random rows cost no page fault
    each (file pages still: the kernel reclaims them, they are no anonymous memory)."""
    flag = getattr(mmap_lib, "MAP_POPULATE", 0) if populate else 0
    if flag:
        buf = mmap_lib.mmap(f.fileno(), 0, flags=mmap_lib.MAP_SHARED | flag,
                            prot=mmap_lib.PROT_READ)  # fmt: skip
    else:
        buf = mmap_lib.mmap(f.fileno(), 0, access=mmap_lib.ACCESS_READ)
    return np.frombuffer(buf, dtype, count=int(np.prod(shape)), offset=offset).reshape(shape)


def _available_bytes() -> int:
    """``MemAvailable`` of ``/proc/meminfo`` (0 where there is none)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _pack_bytes(manifest: dict) -> int:
    row = int(np.prod(manifest["info"]["input_shape"])) * np.dtype(manifest["dtype"]).itemsize
    return sum(int(p.get("rows", 0)) for p in manifest["splits"].values()) * row


def _part(root: Path, name: str, entry, manifest, populate: bool) -> Dataset:
    where = f"pack:{root} {name}"
    if not isinstance(entry, dict) or not isinstance(entry.get("x"), list) or not entry["x"]:
        raise UserError(f"{where}: expected a list of shards, got {entry!r:.80}")
    if manifest.get("storage", "npy") == "arrayrecord":
        examples: LazyArray = _records(root, where, entry, manifest)
    else:
        examples = _sharded(root, where, entry, manifest, populate)
    y = _open_npy(root, _file_name(where, entry.get("y")), where, mmap=False)
    if len(y) != len(examples):
        raise UserError(f"{where}: {len(examples)} examples but {len(y)} targets")
    return Dataset(examples, y)


def _records(root: Path, where: str, entry: dict, manifest: dict) -> LazyArray:
    """An ArrayRecord pack's examples: each shard checked (a regular file, no link), then read
    through ``array_record``'s random-access data source."""
    _, source_lib = _array_record()
    names = [_file_name(where, shard) for shard in entry["x"]]
    for name in names:
        try:
            _contained.open_read(root / name, name=where).close()  # refuses a link
        except FileNotFoundError:
            raise UserError(f"{where}: {name} is missing; the pack is incomplete") from None
    source = source_lib.ArrayRecordDataSource([str(root / n) for n in names])
    rows = sum(int(shard.get("rows", -1)) for shard in entry["x"])
    if len(source) != rows:
        raise UserError(f"{where}: the shards hold {len(source)} records; the manifest says {rows}")
    shape = tuple(manifest["info"]["input_shape"])
    dtype = np.dtype(manifest["dtype"])
    size = int(np.prod(shape)) * dtype.itemsize

    def decode(records):
        if any(len(r) != size for r in records):
            raise ValueError(f"{where}: expected records of {size} bytes ({dtype} {shape})")
        rows = bytearray(b"".join(records))  # a writable buffer: the rows are the caller's
        return np.frombuffer(rows, dtype).reshape(len(records), *shape)

    return SourceArray(source, decode, shape, dtype)


def _sharded(root: Path, where: str, entry: dict, manifest: dict, populate: bool) -> LazyArray:
    shapes = manifest["info"]["input_shape"]
    shards = []
    for shard in entry["x"]:
        x = _open_npy(root, _file_name(where, shard), where, mmap=True, populate=populate)
        if (
            list(x.shape[1:]) != list(shapes)
            or x.shape[0] != shard.get("rows")
            or (str(x.dtype) != manifest.get("dtype"))
        ):
            raise UserError(
                f"{where}: {shard['file']} holds {x.dtype} {x.shape}; the manifest says "
                f"{shard.get('rows')} rows of {manifest.get('dtype')} {tuple(shapes)}"
            )
        shards.append(x)
    return ShardedArray(shards)


def load_pack(path: str, *, seed: int, val_fraction: float, test_fraction: float) -> Splits:
    """The splits of a pack written by :func:`pack` or :class:`PackWriter` (``pack:DIR``).

    Chapter 9: the examples stay memory-mapped on disk (see the module's docstring); splits the
    pack lacks are carved from its training split with ``seed`` (validation) and the fixed test
    seed, as :func:`jaxnn.data.splits.split` carves any source.

    Raises:
      UserError: for a missing or incomplete pack, or a manifest and files that disagree.
    """
    from jaxnn.data.splits import split

    root = Path(path).expanduser()
    manifest = _manifest(root)
    try:
        info = snapshot.info_from_json(json.dumps(manifest["info"]))
    except (TypeError, ValueError, KeyError, AttributeError) as e:
        raise UserError(f"pack:{root}: its manifest's info is malformed ({e})") from None
    try:
        # map every page up front when the pack fits in half the memory available (it is
        # then in the page cache after the statistics pass anyway); a larger one is mapped
        # lazily, page by page as batches touch it
        populate = 2 * _pack_bytes(manifest) <= _available_bytes()
    except (TypeError, ValueError, KeyError, AttributeError):
        raise UserError(f"pack:{root}: its manifest's shapes are malformed") from None
    parts = {
        name: _part(root, name, entry, manifest, populate)
        for name, entry in manifest["splits"].items()
    }
    train, val, test = split(
        f"pack:{root}",
        parts["train"],
        val=parts.get("val"),
        test=parts.get("test"),
        seed=seed,
        val_fraction=val_fraction,
        test_fraction=test_fraction,
        stratify=info.task == "classification",
    )
    return Splits(train, val, test, info.replace(name=f"pack:{root}"))
