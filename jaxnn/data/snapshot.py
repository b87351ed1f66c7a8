"""A run's own copy of its data — Chapter 15: a run directory that stands alone.

A run trained on a user's file keeps ``RUN/data.npz``: the splits exactly as the loader made them
(before normalization; the sealed test split is copied without being unsealed), compressed, with
the dataset info (task, classes, tokenizer, missing-value record) as JSON. ``jaxnn eval``,
``--resume`` and ``jaxnn doctor --out`` load it when the training file has moved or changed, and
get the same arrays bit for bit, so a resumed run still performs the same updates.

The snapshot is kept when the arrays take at most :data:`SNAPSHOT_LIMIT` bytes (64 MiB,
uncompressed); a larger dataset is not copied, and the run records why. It is written through
:func:`jaxnn._contained.write_replacing` (a new file, renamed into place, never through a link)
and read back without following a link, checked against the SHA-256 recorded in
``config.json`` before :func:`numpy.load` (``allow_pickle=False``) sees a byte of it.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path

import numpy as np

from jaxnn._contained import write_replacing
from jaxnn.data.containers import Dataset, DatasetInfo, Splits
from jaxnn.errors import UserError

__all__ = ["SNAPSHOT", "SNAPSHOT_LIMIT", "info_from_json", "info_json", "read_snapshot",
           "split_parts", "write_snapshot"]  # fmt: skip

SNAPSHOT = "data.npz"
#: The most bytes the splits' arrays may take (uncompressed) to be copied into the run: 64 MiB.
SNAPSHOT_LIMIT = 64 * 2**20
_PARTS = ("train", "val", "test")


def split_parts(splits: Splits) -> dict[str, Dataset]:
    """The three splits by name, the test split copied out without being unsealed."""
    held: list[Dataset] = []

    def hold(d: Dataset) -> Dataset:
        held.append(d)  # copied, not looked at: no unseal
        return d

    splits.test.map(hold)
    return {"train": splits.train, "val": splits.val, "test": held[0]}


def info_json(info: DatasetInfo) -> str:
    """The dataset info as JSON text (the tokenizer included); :func:`info_from_json` reads it."""
    fields = {
        "name": info.name, "task": info.task, "input_shape": list(info.input_shape),
        "num_classes": info.num_classes, "modality": info.modality,
        "class_names": list(info.class_names) if info.class_names is not None else None,
        "description": info.description, "notes": list(info.notes), "missing": info.missing,
        "tokenizer": info.tokenizer.to_json() if info.tokenizer is not None else None,
    }  # fmt: skip
    return json.dumps(fields, allow_nan=False)


def write_snapshot(out: Path, splits: Splits) -> dict:
    """Write ``out/data.npz`` when the arrays fit :data:`SNAPSHOT_LIMIT`; return its record.

    Returns:
      ``{"file", "sha256", "bytes", "array_bytes"}`` for a written snapshot, or ``{"file":
      None, "array_bytes", "limit"}`` when the data is too large to copy.
    """
    parts = split_parts(splits)
    total = sum(d.x.nbytes + d.y.nbytes for d in parts.values())
    if total > SNAPSHOT_LIMIT:
        return {"file": None, "array_bytes": int(total), "limit": SNAPSHOT_LIMIT}
    arrays = {f"{a}_{p}": getattr(d, a) for p, d in parts.items() for a in ("x", "y")}
    buf = io.BytesIO()
    np.savez_compressed(buf, info=np.asarray(info_json(splits.info)), **arrays)
    data = buf.getvalue()
    out.mkdir(parents=True, exist_ok=True)
    write_replacing(out / SNAPSHOT, data)
    digest = hashlib.sha256(data).hexdigest()
    return {"file": SNAPSHOT, "sha256": digest, "bytes": len(data), "array_bytes": int(total)}


def _read_bytes(path: Path) -> bytes:
    """The file's bytes, opened without following a link."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError as err:
        state = "a symbolic link" if path.is_symlink() else (err.strerror or "unreadable")
        raise UserError(f"{path}: expected the run's data snapshot as a regular file, it is "
                        f"{state}")  from None  # fmt: skip
    with os.fdopen(fd, "rb") as f:
        return f.read()


def read_snapshot(out: Path, record: dict) -> Splits:
    """The splits of ``out``'s snapshot, after checking its SHA-256 against ``record``.

    Raises:
      UserError: if the file is missing, a link, or its digest differs from the record.
    """
    path = Path(out) / SNAPSHOT
    data = _read_bytes(path)
    digest = hashlib.sha256(data).hexdigest()
    if digest != record.get("sha256"):
        raise UserError(
            f"{path}: the data snapshot's sha256 is {digest[:12]}..., the run recorded "
            f"{str(record.get('sha256'))[:12]}...; it was changed after training: restore it, "
            f"or point at the training file"
        )
    with np.load(io.BytesIO(data), allow_pickle=False) as f:
        info = info_from_json(str(f["info"]))
        sets = {p: Dataset(f[f"x_{p}"], f[f"y_{p}"]) for p in _PARTS}
    return Splits(sets["train"], sets["val"], sets["test"], info)


def info_from_json(text: str) -> DatasetInfo:
    """The :class:`DatasetInfo` of :func:`info_json` text."""
    from jaxnn.data.text import tokenizer_from_json

    fields = json.loads(text)
    tokenizer = fields.pop("tokenizer")
    fields["input_shape"] = tuple(fields["input_shape"])
    return DatasetInfo(**fields, tokenizer=tokenizer_from_json(tokenizer) if tokenizer else None)
