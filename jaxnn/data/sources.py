"""A user's own files as datasets — Chapter 9: data pipelines start from the data you have.

``jaxnn.data.load`` turns a source spec into the same :class:`~jaxnn.data.Splits` that the
built-in datasets give, so every model and the training loop take it unchanged. The loaders here
are entries of the one table of data sources, :data:`jaxnn.data.datasets.SOURCES`, which checks
their options (:mod:`jaxnn.data.options`) before any file is read:

- ``csv:PATH``: a table with a header row. The target is ``target=NAME`` (the last column by
  default); integer or string labels mean classification (labels become ids in sorted order, the
  names kept in ``info.class_names``), fractional numbers or ``task=regression`` mean
  regression. Every other column is a numeric feature; fields are split at ``delimiter`` (``,``;
  ``tab`` for TSV) with no quoting. Parsed by ``numpy.loadtxt`` (its C parser), so a million rows
  take seconds and no extra package is needed.
- ``npz:PATH``: arrays ``x``, ``y``, or ``x_train``, ``y_train`` with optional ``x_val``, ``y_val``,
  ``x_test``, ``y_test``.
- ``npy:DIR``: the same array names as ``DIR/<name>.npy`` files, memory-mapped while read.
- ``pack:DIR``: a pack written by ``jaxnn pack`` (:mod:`jaxnn.data.streaming`): memory-mapped
  shards that stay on disk while a run trains, for data larger than memory.
- ``text:PATH``: UTF-8 text for a language model, char or byte-pair tokens as for ``pydoc_text``;
  contiguous train, then validation, then test ranges.
- ``images:DIR`` (alias ``folder:DIR``): one subfolder per class (sorted folder names are the class
  names), PNG or JPEG read with Pillow, as NHWC float32 in [0, 1].

For prediction (Chapter 5: inputs only, transformed as in training), :func:`csv_columns` names the
feature columns a run should record, :func:`read_csv_features` reads those columns from a new
file, and :func:`read_images` reads image files as ``images:`` did.

Integer ``y`` means classification and floating ``y`` regression unless ``task=`` says otherwise.
Data that carries no split is split as the built-ins are (:func:`jaxnn.data.splits.split`): seeded
and stratified, the test set held out with a fixed seed and sealed. :func:`source_sha256`
fingerprints the file(s) a spec reads, and :func:`source_record` gathers what a run directory
keeps about its data. A malformed file raises :class:`~jaxnn.errors.UserError` naming the file,
the line or entry, and what was expected.
"""

from __future__ import annotations

import hashlib
import types
from pathlib import Path
from typing import NamedTuple

import numpy as np

from jaxnn.data import arrays as arrayfile
from jaxnn.data import csvfile, images, streaming
from jaxnn.data.containers import Dataset, DatasetInfo, Splits
from jaxnn.data.images import IMAGE_SUFFIXES
from jaxnn.data.options import (
    bpe_vocabulary,
    check_options,
    csv_delimiter,
    fractions_below_one,
    image_size,
)
from jaxnn.data.splits import split
from jaxnn.errors import UserError

__all__ = [
    "ALIASES",
    "BUILTIN_NAMES",
    "KINDS",
    "IMAGE_SUFFIXES",
    "TEXT_CHECKS",
    "TEXT_OPTIONS",
    "CsvInputs",
    "csv_columns",
    "label_names",
    "load_csv",
    "load_images",
    "load_npy",
    "load_npz",
    "load_text",
    "parse_spec",
    "read_csv_features",
    "read_csv_inputs",
    "read_images",
    "resolve_spec",
    "source_files",
    "source_record",
    "source_sha256",
    "text_splits",
]

KINDS = ("csv", "npz", "npy", "pack", "text", "images")
ALIASES = {"folder": "images"}
_SUFFIX_KINDS = {".csv": "csv", ".npz": "npz", ".txt": "text"}
_SPLIT_NAMES = ("train", "val", "test")
# The built-in datasets without a prefix (jaxnn.data.datasets.SOURCES, which imports this module,
# lists them; a test checks the two agree): a bare name among them never means a folder.
BUILTIN_NAMES = ("mnist1d", "digits", "mnist5k", "pydoc_text")
_MAX_INFERRED_CLASSES = 1000  # more distinct integer targets than this need an explicit task=


# --------------------------------------------------------------------------------------------
# Specs
# --------------------------------------------------------------------------------------------


def parse_spec(spec) -> tuple[str, Path] | None:
    """Split ``"kind:PATH"`` into ``(kind, Path)``, or return None if ``spec`` is no file source.

    ``folder:`` is accepted as another name for ``images:``; ``~`` in the path is expanded.
    """
    if not isinstance(spec, str):
        return None
    kind, sep, rest = spec.partition(":")
    kind = ALIASES.get(kind, kind)
    if not sep or kind not in KINDS:
        return None
    if not rest:
        raise UserError(f"load({spec!r}): expected a path after '{kind}:', got nothing")
    return kind, Path(rest).expanduser()


def resolve_spec(name: str) -> str:
    """Map a bare path to its source spec: ``my.csv`` -> ``csv:my.csv``; anything else unchanged.

    ``.csv``, ``.npz`` and ``.txt`` files map by suffix; an existing directory maps to ``pack:``
    if it holds a pack manifest (``jaxnn pack``), to ``npy:`` if it holds ``x.npy`` or
    ``x_train.npy``, else to ``images:``. Names that already carry a
    kind, and names that are neither, are returned as given. A built-in dataset's name
    (``mnist1d``, ``digits``, ...) always means the built-in set, even where a folder of that
    name exists: ``./mnist1d`` or ``images:mnist1d`` names the folder.
    """
    if not isinstance(name, str) or not name or parse_spec(name) is not None:
        return name
    if name in BUILTIN_NAMES:
        return name
    kind = _SUFFIX_KINDS.get(Path(name).suffix.lower())
    if kind is not None:
        return f"{kind}:{name}"
    path = Path(name).expanduser()
    if ":" not in name and path.is_dir():
        return f"{_folder_kind(path)}:{name}"
    return name


def _folder_kind(path: Path) -> str:
    """The source kind of a folder: a pack, ``.npy`` arrays, or images."""
    if streaming.is_pack(path):
        return "pack"
    return "npy" if (path / "x.npy").is_file() or (path / "x_train.npy").is_file() else "images"


def source_files(spec: str) -> list[Path]:
    """The files that ``jaxnn.data.load(spec)`` reads, in a fixed (sorted) order.

    Raises:
      UserError: if ``spec`` is no file source, or its file or directory does not exist.
    """
    parsed = parse_spec(spec)
    if parsed is None:
        raise UserError(f"source_files: expected a file source such as csv:PATH, got {spec!r}")
    kind, path = parsed
    if kind == "npy":
        names = _array_names(_npy_available(path), f"npy:{path}")
        return [path / f"{n}.npy" for n in names]
    if kind == "images":
        return [p for _, files in _class_folders(path) for p in files]
    if kind == "pack":
        return [path / streaming.MANIFEST]
    return [_existing_file(path, kind)]


def source_sha256(spec: str) -> str:
    """The SHA-256 hex digest of the data behind ``spec``, to record which data a run saw.

    For a single file (csv, npz, text) it is the digest of the file's bytes, the same as
    ``sha256sum FILE``. For a directory (npy, images) it is the digest of the lines
    ``"<relative path>  <file digest>\\n"`` of every file read, in sorted order, so renaming a
    class folder or changing one image changes it. For a pack it is the digest of its manifest,
    which records the sha256 of every shard (computed as the pack was written; a shard changed
    by hand afterwards is not detected).
    """
    parsed = parse_spec(spec)
    if parsed is None:
        raise ValueError(f"source_sha256: expected a file of your own (KIND:PATH), got {spec!r}")
    if parsed[0] == "pack":
        return streaming.pack_sha256(parsed[1])
    files = source_files(spec)
    if parsed[0] not in ("npy", "images"):
        return _file_sha256(files[0])
    root = parsed[1]
    lines = (f"{p.relative_to(root).as_posix()}  {_file_sha256(p)}\n" for p in files)
    return hashlib.sha256("".join(lines).encode("utf-8")).hexdigest()


def source_record(spec: str, **options) -> dict:
    """What a run directory records about its data: a JSON-able dict.

    ``{"spec", "kind", "path" (absolute), "sha256", "options"}``, and for ``csv:`` the
    ``feature_columns`` and ``target_column`` that :func:`read_csv_features` needs to read a new
    file at prediction time, after the training file is gone.

    Raises:
      UserError: if ``spec`` is no file source or its data is missing.
    """
    parsed = parse_spec(spec)
    if parsed is None:
        raise UserError(f"source_record: expected a file source such as csv:PATH, got {spec!r}")
    kind, path = parsed
    record = {
        "spec": spec,
        "kind": kind,
        "path": str(path.resolve()),
        "sha256": source_sha256(spec),
        "options": dict(options),
    }
    if kind == "csv":
        keep = {k: options[k] for k in ("target", "delimiter") if k in options}
        features, target = csv_columns(path, **keep)
        record.update(feature_columns=list(features), target_column=target)
    return record


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _existing_file(path: Path, kind: str) -> Path:
    if not path.exists():
        raise UserError(f"{kind}:{path}: file not found; expected an existing {kind} file")
    if not path.is_file():
        raise UserError(f"{kind}:{path}: expected a file, got a directory")
    if path.stat().st_size == 0:
        raise UserError(f"{kind}:{path}: the file is empty; expected {kind} data")
    return path


# --------------------------------------------------------------------------------------------
# Shared: options, labels, splitting
# --------------------------------------------------------------------------------------------


def _label_ids(values: np.ndarray) -> tuple[np.ndarray, tuple[str, ...]]:
    """Class ids in sorted-label order (int32) and the label names."""
    classes, ids = np.unique(values, return_inverse=True)
    if np.issubdtype(classes.dtype, np.floating):
        names = tuple(str(int(c)) if float(c).is_integer() else str(c) for c in classes)
    else:
        names = tuple(str(c) for c in classes)
    return ids.astype(np.int32).reshape(-1), names


def _is_integral(values: np.ndarray) -> bool:
    if np.issubdtype(values.dtype, np.integer) or values.dtype == bool:
        return True
    return bool(np.issubdtype(values.dtype, np.floating) and np.all(np.mod(values, 1) == 0))


def _pick_task(where: str, y: np.ndarray, task) -> str:
    """``task`` as given, or inferred: integer, boolean or string labels classify."""
    numeric = np.issubdtype(y.dtype, np.number) or y.dtype == bool
    if task == "regression" and not numeric:
        raise UserError(
            f"{where}: expected numeric targets for task=regression, got labels of dtype "
            f"{y.dtype} (e.g. {y.reshape(-1)[0]!r})"
        )
    if task is not None:
        return task
    if numeric and not _is_integral(y):
        return "regression"
    distinct = len(np.unique(y))
    if numeric and distinct > _MAX_INFERRED_CLASSES:
        raise UserError(
            f"{where}: the integer targets take {distinct} distinct values; pass "
            f"task=regression, or task=classification if they really are "
            f"{distinct} classes"
        )
    return "classification"


def _regression_targets(y: np.ndarray) -> np.ndarray:
    y = np.asarray(y, dtype=np.float32)
    return y.reshape(-1, 1) if y.ndim == 1 else y.reshape(len(y), -1)  # (N, outputs)


def _as_features(where: str, x: np.ndarray) -> np.ndarray:
    if np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer):
        return np.asarray(x, dtype=np.float32)
    raise UserError(f"{where}: expected numeric features, got dtype {x.dtype}")


def _check_finite(where: str, x: np.ndarray, entry: str = "index", base: int = 0) -> None:
    """Raise unless every value is finite, naming the first bad example (``base``-numbered)."""
    if np.isfinite(x).all():
        return
    bad = ~np.isfinite(x.reshape(len(x), -1)).all(axis=1)
    if bad.any():
        first = int(np.flatnonzero(bad)[0]) + base
        raise UserError(
            f"{where}: expected finite numbers, got NaN or infinity in {int(bad.sum())} "
            f"example(s), the first at {entry} {first}"
        )


# --------------------------------------------------------------------------------------------
# csv:PATH (the format's rules: jaxnn.data.csvfile)
# --------------------------------------------------------------------------------------------


def load_csv(
    path: str, *, seed: int, target, task, delimiter: str, missing: str, val_fraction: float,
    test_fraction: float,
) -> Splits:  # fmt: skip
    """A CSV table with a header row as train/validation/test splits (``csv:PATH``).

    Chapter 9: the ``target`` column (the last one by default) holds the labels or regression
    targets, every other column is a numeric feature; the rows are split by
    :func:`~jaxnn.data.splits.split`, stratified for classification. Quoting follows RFC 4180
    and ``missing`` (``error``, ``drop`` or ``mean``) says what a missing value does
    (:mod:`jaxnn.data.csvfile`); what was dropped or filled is in ``info.missing`` and
    ``info.notes``.

    Raises:
      UserError: for a missing or malformed file, naming it, the line and the column at fault.
    """
    resolved = Path(path).expanduser()
    where = f"csv:{resolved}"
    delimiter = csv_delimiter(delimiter)
    header = csvfile.read_header(_existing_file(resolved, "csv"), where, delimiter)
    t = _target_column(where, header, target)
    features = [i for i in range(len(header)) if i != t]
    table = csvfile.read_table(
        resolved, where, header, features, t, delimiter=delimiter, target_given=target is not None
    )
    table, dropped = _apply_missing(where, table, header, features, t, missing)
    task = _pick_task(where, table.y, task)
    classify = task == "classification"
    if classify:
        y, class_names = _label_ids(table.y)
    else:
        y, class_names = _regression_targets(table.y), None
    names = [header[j] for j in features]
    (train, val, test), record = _csv_split(
        where, table.x, y, names, missing, dropped,
        seed=seed, val_fraction=val_fraction, test_fraction=test_fraction, stratify=classify,
    )  # fmt: skip
    info = DatasetInfo(
        name=f"csv:{resolved}",
        task=task,
        input_shape=(len(features),),
        num_classes=len(class_names) if class_names is not None else int(y.shape[1]),
        class_names=class_names,
        modality="tabular",
        description=(
            f"CSV file {resolved} ({len(y)} rows, {len(features)} features, target "
            f"{header[t]!r}, {task})"
        ),
        notes=_missing_notes(where, record),
        missing=record,
    )
    return Splits(train, val, test, info)


def _apply_missing(where, table, header, features, t, policy):
    """The table after ``policy`` (``drop`` skips rows with a gap; ``mean`` those without a
    target) and the counts before it; raises for ``error`` when a value is missing."""
    counts = csvfile.missing_counts(table)
    if not counts["cells"]:
        return table, None
    if policy == "error":
        csvfile.check_missing(where, table, header, features, t)
    rows = table.y_missing | (table.x_missing.any(axis=1) if policy == "drop" else False)
    kept = csvfile.drop_rows(table, rows)
    if not len(kept.x):
        raise UserError(
            f"{where}: every row is missing a value ({counts['cells']} missing cell(s)); "
            f"nothing is left to train on"
        )
    return kept, {**counts, "dropped_rows": int(rows.sum())}


def _csv_split(where, x, y, names, policy, dropped, **split_args):
    """``((train, val, test), missing record)``: a ``mean`` fill uses training rows only."""
    if policy != "mean":
        x = np.asarray(x, np.float32)  # the C parser's float32 is kept as is
        record = None if dropped is None else {"policy": policy, **dropped, "fill": None}
        return split(where, Dataset(x, y), **split_args), record
    rows = split(where, Dataset(np.arange(len(y))[:, None], y), **split_args)  # the same draw
    x, means = csvfile.fill_means(where, names, np.asarray(x, np.float64), rows[0].x[:, 0])
    parts = tuple(Dataset(x[r.x[:, 0]], y[r.x[:, 0]]) for r in rows)
    counts = dropped or {"cells": 0, "rows": 0, "dropped_rows": 0}
    fill = dict(zip(names, means.tolist(), strict=True))
    return parts, {"policy": "mean", **counts, "fill": fill}


def _missing_notes(where: str, record) -> tuple[str, ...]:
    if record is None or not record["cells"]:
        return ()
    note = (
        f"{where}: {record['cells']} missing value(s) in {record['rows']} row(s), "
        f"missing={record['policy']}: {record['dropped_rows']} row(s) dropped"
    )
    return (note + (", the other gaps filled with training means" if record["fill"] else ""),)


def _target_column(where: str, header: list[str], target) -> int:
    """The index of the target column: by name, or by position for an integer ``target``."""
    if target is None:
        return len(header) - 1
    if str(target) in header:
        return header.index(str(target))
    is_index = isinstance(target, int) and not isinstance(target, bool)
    if is_index and -len(header) <= target < len(header):
        return target % len(header)
    raise UserError(f"{where}: target column {target!r} not found; expected one of {header}")


def _csv_delimiter(where: str, delimiter) -> str:
    try:
        return csv_delimiter(delimiter)
    except ValueError:
        raise UserError(
            f"{where}: expected delimiter to be one character (or 'tab'), got {delimiter!r}"
        ) from None


def csv_columns(path, *, target=None, delimiter: str = ",") -> tuple[tuple[str, ...], str]:
    """``(feature column names, target column name)`` as ``csv:PATH`` reads them, in file order.

    A run records the feature names, so that :func:`read_csv_features` can pick the same
    columns, in the same order, from a new file at prediction time.

    Raises:
      UserError: for a missing or empty file, no header row, or an unknown ``target``.
    """
    path = Path(path).expanduser()
    where = f"csv:{path}"
    delimiter = _csv_delimiter(where, delimiter)
    header = csvfile.read_header(_existing_file(path, "csv"), where, delimiter)
    t = _target_column(where, header, target)
    return tuple(n for i, n in enumerate(header) if i != t), header[t]


def read_csv_features(path, features, *, delimiter: str = ",") -> np.ndarray:
    """The columns named ``features`` of a CSV file with a header, as float32 (N, F).

    Chapter 5: inference needs the inputs only. Columns are taken by name and in the order of
    ``features`` (the training file's :func:`csv_columns`); other columns, such as the target or
    an id, are ignored.

    Raises:
      UserError: naming the file for a missing feature column (with the columns present), a
        ragged row or a non-numeric cell (with its line), or a NaN or infinite value.
    """
    return read_csv_inputs(path, features, delimiter=delimiter).x


class CsvInputs(NamedTuple):
    """What :func:`read_csv_inputs` read: features, raw targets (or None) and data row ids."""

    x: np.ndarray
    y: np.ndarray | None
    rows: np.ndarray


def read_csv_inputs(
    path, features, *, target: str | None = None, delimiter: str = ",", missing: str = "error",
    fill: dict | None = None,
) -> CsvInputs:  # fmt: skip
    """The columns named ``features`` (and ``target``) of a new CSV file, read as a run's was.

    Chapter 5: inputs transformed exactly as the training inputs were, matched by name (the
    order of the file's columns does not matter). ``missing`` is the run's policy: ``drop``
    skips the rows with a gap, ``mean`` fills a feature with ``fill`` (the training means,
    ``info.missing["fill"]``) and skips rows without a target.

    Returns:
      :class:`CsvInputs`: ``x`` float32 (N, F), the raw target column (N,) or None, and the
      0-based data row of each example kept.

    Raises:
      UserError: for a missing column (naming the columns the file has), a ragged row, a bad
        cell (line and column) or a missing value the policy does not cover.
    """
    path = Path(path).expanduser()
    where = f"csv:{path}"
    delimiter = _csv_delimiter(where, delimiter)
    header = csvfile.read_header(_existing_file(path, "csv"), where, delimiter, min_columns=1)
    wanted = [*features, *([] if target is None else [target])]
    absent = [f for f in wanted if f not in header]
    if absent or not features:
        raise UserError(
            f"{where}: expected the {'feature ' if target is None else ''}columns "
            f"{list(wanted)} the run was trained on, missing "
            f"{absent}; the file has columns {header}"
        )
    cols = [header.index(f) for f in features]
    t = header.index(target) if target is not None else None
    table = csvfile.read_table(path, where, header, cols, t, delimiter=delimiter)
    return _new_rows(where, table, header, cols, t, missing, fill)


def _new_rows(where, table, header, cols, t, missing, fill) -> CsvInputs:
    if missing == "error" or (missing == "mean" and not fill):
        csvfile.check_missing(where, table, header, cols, t)
    gaps = table.x_missing.any(axis=1)
    rows = table.y_missing | (gaps if missing == "drop" else False)
    kept = csvfile.drop_rows(table, rows)
    x = kept.x
    if missing == "mean" and kept.x_missing.any():
        means = np.asarray([fill[header[j]] for j in cols], np.float64)
        x = np.where(kept.x_missing, means, np.asarray(x, np.float64))
    if not len(x):
        raise UserError(f"{where}: every row is missing a value; nothing is left to read")
    return CsvInputs(np.asarray(x, np.float32), kept.y, np.flatnonzero(~rows))


def label_names(values: np.ndarray) -> list[str]:
    """The class name of each raw label, as ``csv:PATH`` and the arrays name their classes."""
    values = np.asarray(values).reshape(-1)
    if np.issubdtype(values.dtype, np.floating):
        return [str(int(v)) if float(v).is_integer() else str(v) for v in values]
    return [str(v) for v in values]


# --------------------------------------------------------------------------------------------
# npz:PATH and npy:DIR
# --------------------------------------------------------------------------------------------


def _array_names(available, path) -> list[str]:
    """The array names to read, checked: ``x``/``y`` or ``x_train``/``y_train`` (+ val, test)."""
    available = set(available)
    if {"x", "y"} <= available:
        return ["x", "y"]
    if not {"x_train", "y_train"} <= available:
        raise UserError(
            f"{path}: expected arrays x and y, or x_train and y_train (optionally x_val, y_val, "
            f"x_test, y_test), got {sorted(available) or 'none'}"
        )
    names = ["x_train", "y_train"]
    for part in ("val", "test"):
        pair = {f"x_{part}", f"y_{part}"} & available
        if len(pair) == 1:
            raise UserError(f"{path}: expected both x_{part} and y_{part}, got only {pair.pop()}")
        if pair:
            names += [f"x_{part}", f"y_{part}"]
    return names


def _npy_dir(path: Path) -> Path:
    if not path.is_dir():
        what = "file not found" if not path.exists() else "not a directory"
        raise UserError(
            f"npy:{path}: {what}; expected a directory holding x.npy and y.npy "
            f"(or x_train.npy, y_train.npy, ...)"
        )
    return path


def _npy_available(path: Path) -> list[str]:
    return [p.stem for p in sorted(_npy_dir(path).glob("*.npy"))]


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    where = f"npz:{_existing_file(path, 'npz')}"
    return arrayfile.read_npz(path, where, lambda names: _array_names(names, where))


def _read_npy(path: Path) -> dict[str, np.ndarray]:
    names = _array_names(_npy_available(path), f"npy:{path}")
    return {n: arrayfile.read_npy(path / f"{n}.npy", f"npy:{path / f'{n}.npy'}") for n in names}


def load_npz(
    path: str, *, seed: int, task, modality, val_fraction: float, test_fraction: float
) -> Splits:
    """Arrays ``x``, ``y`` (or ``x_train``, ``y_train`` and optional val and test pairs) of an
    ``.npz`` archive as splits (``npz:PATH``).

    Chapter 9: the splits the archive lacks are carved by :func:`~jaxnn.data.splits.split`.

    Raises:
      UserError: for a missing or malformed archive, naming it and the array at fault.
    """
    resolved = Path(path).expanduser()
    arrays = _read_npz(resolved)
    return _arrays_splits(
        f"npz:{resolved}",
        arrays,
        seed=seed,
        task=task,
        modality=modality,
        val_fraction=val_fraction,
        test_fraction=test_fraction,
    )


def load_npy(
    path: str, *, seed: int, task, modality, val_fraction: float, test_fraction: float
) -> Splits:
    """The arrays of :func:`load_npz` as ``DIR/<name>.npy`` files, memory-mapped (``npy:DIR``).

    Raises:
      UserError: for a missing directory or an unreadable array, naming it.
    """
    resolved = Path(path).expanduser()
    arrays = _read_npy(resolved)
    return _arrays_splits(
        f"npy:{resolved}",
        arrays,
        seed=seed,
        task=task,
        modality=modality,
        val_fraction=val_fraction,
        test_fraction=test_fraction,
    )


def _pair(split_name: str) -> tuple[str, str]:
    """The names of a split's arrays: ``("x", "y")`` unsplit, else ``("x_val", "y_val")``..."""
    return (f"x_{split_name}", f"y_{split_name}") if split_name else ("x", "y")


def _check_pairs(where: str, arrays: dict) -> list[str]:
    """The splits present (``""`` for unsplit x, y), with each x/y pair checked."""
    splits = [""] if "x" in arrays else [s for s in _SPLIT_NAMES if f"x_{s}" in arrays]
    for s in splits:
        _check_pair(where, *_pair(s), arrays)
    shapes = {arrays[_pair(s)[0]].shape[1:] for s in splits}
    if len(shapes) > 1:
        raise UserError(f"{where}: expected one example shape in every split, got {shapes}")
    return splits


def _check_pair(where: str, xn: str, yn: str, named: dict) -> None:
    x, y = named[xn], named[yn]
    arrayfile.check_array(where, xn, x)
    arrayfile.check_array(where, yn, y, arrayfile.LABEL_KINDS)
    arrayfile.check_values(where, yn, y)
    if x.ndim < 2 or y.ndim < 1 or len(x) != len(y) or len(x) == 0:
        raise UserError(
            f"{where}: expected {xn} (N, features...) and {yn} (N, ...) with the same N >= 1, "
            f"got shapes {x.shape} and {y.shape}"
        )


def _array_targets(where: str, ys: list, task) -> tuple[str, list, tuple[str, ...] | None]:
    """``(task, targets per split, class names)``: class ids over all splits, or (N, outputs)."""
    ys = [_squeeze_column(np.asarray(y)) for y in ys]
    task = _pick_task(where, np.concatenate([y.reshape(len(y), -1) for y in ys]), task)
    if task != "classification":
        return task, [_regression_targets(y) for y in ys], None
    return (task, *_class_targets(where, ys))


def _squeeze_column(y: np.ndarray) -> np.ndarray:
    return y[:, 0] if y.ndim == 2 and y.shape[1] == 1 else y  # (N, 1) -> (N,)


def _class_targets(where: str, ys: list) -> tuple[list, tuple[str, ...]]:
    """Class ids per split, numbered over the labels of every split, and the class names."""
    ids, class_names = _label_ids(np.concatenate([y.reshape(-1) for y in ys]))
    if any(y.ndim != 1 for y in ys):
        raise UserError(f"{where}: expected 1-D class labels y, got shapes {[y.shape for y in ys]}")
    return np.split(ids, np.cumsum([len(y) for y in ys])[:-1]), class_names


def _array_set(where: str, split_name: str, x: np.ndarray, y: np.ndarray) -> Dataset:
    xn, yn = _pair(split_name)
    arrayfile.check_values(where, xn, x)
    x = _as_features(where, x)
    _check_finite(f"{where} {yn}", y)
    return Dataset(x, y)


def _arrays_splits(where, arrays, *, seed, task, modality, val_fraction, test_fraction):
    splits = _check_pairs(where, arrays)
    task, ys, class_names = _array_targets(where, [arrays[_pair(s)[1]] for s in splits], task)
    sets = {
        s: _array_set(where, s, arrays[_pair(s)[0]], y) for s, y in zip(splits, ys, strict=True)
    }
    classify = task == "classification"
    train, val, test = split(
        where,
        sets.get("train", sets.get("")),
        val=sets.get("val"),
        test=sets.get("test"),
        seed=seed,
        val_fraction=val_fraction,
        test_fraction=test_fraction,
        stratify=classify,
    )
    info = DatasetInfo(
        name=where,
        task=task,
        input_shape=train.x.shape[1:],
        num_classes=len(class_names) if classify else int(train.y.shape[1]),
        class_names=class_names,
        modality=modality or ("image" if train.x.ndim == 4 else "tabular"),
        description=f"arrays {', '.join(arrays)} from {where.partition(':')[2]} ({task})",
    )
    return Splits(train, val, test, info)


# --------------------------------------------------------------------------------------------
# text:PATH
# --------------------------------------------------------------------------------------------


# Each option a text source takes, with its default: the windows, the tokenizer, and the shares of
# the text held out for validation and testing.
TEXT_OPTIONS = types.MappingProxyType(
    {
        "seq_len": 128,
        "stride": None,
        "train_stride": None,
        "tokenizer": "char",
        "vocab_size": 512,
        "val_fraction": 0.1,
        "test_fraction": 0.1,
    }
)
TEXT_CHECKS = (fractions_below_one, bpe_vocabulary)


def text_splits(text: str, *, name: str, description: str, where: str | None = None, **options):
    """Language-model splits of one text: contiguous train, then validation, then test ranges.

    Chapter 9 and 12: the tokenizer (``"char"`` or ``"bpe"`` with ``vocab_size``) is fitted on the
    training range only; each range is cut into next-token windows of ``seq_len`` tokens with
    :func:`~jaxnn.data.text.lm_windows`. The same recipe as the built-in ``pydoc_text``.

    Args:
      text: the whole text.
      name: the dataset's name (``info.name``).
      description: one line about the text (``info.description``).
      where: the source, to start error messages with (``name`` by default).
      **options: those of :data:`TEXT_OPTIONS`, whose defaults they override: ``seq_len``
        (128), ``stride`` (None: ``seq_len``), ``train_stride`` (the training range's own
        stride, None: ``stride``; ``1`` makes every offset a window, so that each step of a
        shuffled epoch draws fresh random windows, as nanoGPT's ``get_batch`` does),
        ``tokenizer`` (``"char"`` or ``"bpe"``),
        ``vocab_size`` (512, bpe only), ``val_fraction`` and ``test_fraction`` (0.1 each).

    Returns:
      :class:`~jaxnn.data.Splits` of int32 (N, seq_len) windows, with the tokenizer in ``info``.

    Raises:
      UserError: if a range holds fewer than ``seq_len + 1`` tokens, or an option is invalid;
        messages start with ``where``.
    """
    from jaxnn.data.text import BPETokenizer, CharTokenizer

    where = where or name
    o = check_options(where, TEXT_OPTIONS, options, TEXT_CHECKS)
    a = int(len(text) * (1.0 - o["val_fraction"] - o["test_fraction"]))
    b = int(len(text) * (1.0 - o["test_fraction"]))
    parts = {"train": text[:a], "val": text[a:b], "test": text[b:]}
    if not parts["train"]:
        raise UserError(f"{where}: the text is too short to hold a training part")
    tok: CharTokenizer | BPETokenizer
    if o["tokenizer"] == "char":
        tok = CharTokenizer.fit(parts["train"])
    else:
        tok = BPETokenizer.fit(parts["train"], vocab_size=o["vocab_size"])
    train_stride = o["stride"] if o["train_stride"] is None else o["train_stride"]
    strides = {"train": train_stride, "val": o["stride"], "test": o["stride"]}
    sets = {
        part: _windows(where, part, t, tok, o["seq_len"], strides[part])
        for part, t in parts.items()
    }
    info = DatasetInfo(
        name=name,
        task="language_model",
        input_shape=(o["seq_len"],),
        num_classes=tok.vocab_size,
        tokenizer=tok,
        modality="text",
        description=description,
    )
    return Splits(sets["train"], sets["val"], sets["test"], info)


def _windows(where: str, part: str, text: str, tok, seq_len: int, stride) -> Dataset:
    """The next-token windows of one range of the text."""
    from jaxnn.data.text import lm_windows

    ids = tok.encode(text)
    if len(ids) < seq_len + 1:
        raise UserError(
            f"{where}: the {part} part ({len(text)} characters) holds {len(ids)} tokens; "
            f"expected at least one window of seq_len + 1 = {seq_len + 1} tokens. Use a "
            f"longer text or a smaller seq_len"
        )
    return Dataset(*lm_windows(ids, seq_len, stride))


def _read_text(path: Path) -> str:
    data = _existing_file(path, "text").read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise UserError(
            f"text:{path}: line {line} (byte {e.start}) is not UTF-8; expected UTF-8 text"
        ) from None
    return text.removeprefix("\ufeff")


def load_text(path: str, *, seed: int, tokenizer: str, **options) -> Splits:
    """A UTF-8 text file as language-model splits (``text:PATH``), as :func:`text_splits` cuts it.

    Chapter 9 and 12: contiguous ranges of one fixed text, so ``seed`` changes nothing.

    Raises:
      UserError: for a missing, empty or non-UTF-8 file (the line at fault), or too short a text.
    """
    del seed  # contiguous ranges of one fixed text: nothing is random
    resolved = Path(path).expanduser()
    text = _read_text(resolved)
    return text_splits(
        text,
        name=f"text:{resolved}",
        where=f"text:{resolved}",
        description=(
            f"text file {resolved} ({len(text)} chars), contiguous train/val/test ranges, "
            f"{tokenizer} tokenizer fitted on train text"
        ),
        tokenizer=tokenizer,
        **options,
    )


# --------------------------------------------------------------------------------------------
# images:DIR
# --------------------------------------------------------------------------------------------


def _class_folders(path: Path) -> list[tuple[str, list[Path]]]:
    """``(class name, sorted image files)`` per subfolder, in sorted folder order."""
    return images.class_folders(path, f"images:{path}")[0]


def _parse_size(where: str, size) -> tuple[int, int] | None:
    try:
        return image_size(size)
    except ValueError:
        raise UserError(
            f"{where}: expected size=HxW with positive integers (e.g. 28x28), got {size!r}"
        ) from None


def _peek(image_mod, file: Path) -> tuple[str, tuple[int, int]]:
    """The image's mode and (height, width), reading its header only."""
    with images.open_image(image_mod, file) as im:
        return im.mode, (im.height, im.width)


def _read_image(image_mod, file: Path, mode: str, size) -> np.ndarray:
    """float32 (H, W, C) in [0, 1] (:func:`jaxnn.data.images.image_array`)."""
    with images.open_image(image_mod, file) as im:
        return images.image_array(image_mod, im, file, mode, size)


_GRAY_MODES = ("1", "L", "LA", "I", "I;16", "F")


def _images_plan(where, image_mod, files, size, mode):
    """Check every image's header; return the (size, mode) to load them with."""
    peeks = [_peek(image_mod, f) for f in files]
    if mode is None:
        mode = "gray" if all(m in _GRAY_MODES for m, _ in peeks) else "rgb"
    if size is None:
        size = peeks[0][1]
        for f, (_, hw) in zip(files, peeks, strict=True):
            if hw != size:
                raise UserError(
                    f"{where}: image {f} is {hw[0]}x{hw[1]} but {files[0]} is {size[0]}x"
                    f"{size[1]}; expected one size, or pass size=HxW to resize them all"
                )
    return size, mode


def load_images(
    path: str, *, seed: int, size, mode, val_fraction: float, test_fraction: float
) -> Splits:
    """A folder with one subfolder of PNG or JPEG images per class as splits (``images:DIR``).

    Chapter 9 and 11: the images become NHWC float32 in [0, 1], converted to ``mode`` (``"gray"``
    or ``"rgb"``; gray if every image is) and resized to ``size`` (HxW; one size must be shared
    if None); the sorted folder names are the class names. The split is stratified.

    Raises:
      UserError: for a missing folder, a class folder without images, an unreadable image or
        images of different sizes without ``size`` (each names the path).
    """
    resolved = Path(path).expanduser()
    where = f"images:{resolved}"
    image_mod = images.pillow()
    folders, notes = images.class_folders(resolved, where)
    files = [f for _, fs in folders for f in fs]
    size, mode = _images_plan(where, image_mod, files, image_size(size), mode)
    x = np.stack([_read_image(image_mod, f, mode, size) for f in files])  # (N, H, W, C)
    y = np.repeat(np.arange(len(folders), dtype=np.int32), [len(fs) for _, fs in folders])
    train, val, test = split(
        where,
        Dataset(x, y),
        seed=seed,
        val_fraction=val_fraction,
        test_fraction=test_fraction,
        stratify=True,
    )
    info = DatasetInfo(
        name=where,
        task="classification",
        input_shape=x.shape[1:],
        num_classes=len(folders),
        class_names=tuple(name for name, _ in folders),
        modality="image",
        description=(
            f"image folder {resolved} ({len(x)} images, {len(folders)} classes, "
            f"{size[0]}x{size[1]} {mode})"
        ),
        notes=notes,
    )
    return Splits(train, val, test, info)


def read_images(path, *, size, mode: str) -> tuple[np.ndarray, list[Path]]:
    """Images for prediction: one file, or every PNG/JPEG directly in a folder (sorted by name).

    Each is converted and resized as ``images:DIR`` training data was (``mode`` ``"gray"`` or
    ``"rgb"``, ``size`` ``(H, W)``: a run's ``input_shape`` gives both).

    Returns:
      ``(x, files)``: NHWC float32 in [0, 1] (N, H, W, C), and the file of each row.

    Raises:
      UserError: for a missing path, a folder without images, or an unreadable image (its path).
    """
    path = Path(path).expanduser()
    where = f"images:{path}"
    if mode not in ("gray", "rgb"):
        raise UserError(f"{where}: expected mode one of ['gray', 'rgb'], got {mode!r}")
    size = _parse_size(where, size)
    if size is None:
        raise UserError(f"{where}: expected size=HxW, got None")
    if path.is_dir():
        files = images.image_files(path)[0]
    elif path.is_file():
        files = [path]
    else:
        raise UserError(f"{where}: not found; expected an image file or a folder of images")
    if not files:
        raise UserError(f"{where}: holds no images; expected {', '.join(IMAGE_SUFFIXES)} files")
    image_mod = images.pillow()
    return np.stack([_read_image(image_mod, f, mode, size) for f in files]), files  # (N,H,W,C)


def __getattr__(name: str):
    if name == "load_source":  # moved to jaxnn.data.datasets with the one table of sources
        from jaxnn.data.datasets import load_source

        return load_source
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
