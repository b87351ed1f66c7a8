"""``jaxnn pack``: a dataset written as memory-mapped shards, to train on it without loading it.

Chapter 9: ``jaxnn pack --dataset SOURCE --to DIR`` loads any source ``jaxnn train`` takes (a
CSV, an ``.npz``, an image folder, a text, a built-in set), carves its splits as training would
(``--seed``, ``--data-option``), and writes them as a pack (:mod:`jaxnn.data.streaming`):
``.npy`` shards of about ``--shard-mb`` MB and a manifest. ``jaxnn train --dataset DIR`` (or
``pack:DIR``) then reads each batch from the shards, so a run's memory does not grow with the
data, and the splits are fixed once for every run on the pack.

``DIR`` is made if missing and must hold no pack yet; shards are written under new names and
renamed into place, never through a link, and the manifest comes last, so a pack stopped
midway is refused by ``train`` rather than read half-written. Data that does not fit in memory
even once is packed chunk by chunk from Python with :class:`jaxnn.data.streaming.PackWriter`.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from jaxnn.app.flags import add_flags, parse_pairs, reuse
from jaxnn.app.options import RunConfig
from jaxnn.errors import UserError
from jaxnn.train.config import REQUIRED, check_field_types, setting

__all__ = ["PackOptions", "add_parser", "run"]


@dataclasses.dataclass(frozen=True)
class PackOptions:
    """What to pack and where; the flags of ``jaxnn pack`` are made from these fields."""

    dataset: str = reuse(RunConfig, "dataset", default=REQUIRED)
    to: str = setting(help="the pack directory to write (made if missing; no pack in it yet).",
                      metavar="DIR")  # fmt: skip
    seed: int = setting(0, "seed of the validation split, as jaxnn train --seed.")
    data_option: tuple[str, ...] = reuse(RunConfig, "data_option")
    shard_mb: int = setting(256, "megabytes of examples per shard file.")
    storage: str = setting(
        "npy",
        "npy: memory-mapped .npy shards (the fastest to read); arrayrecord: ArrayRecord files, "
        "one record per example (read through array_record's random-access source).",
        choices=("npy", "arrayrecord"),
    )

    def __post_init__(self):
        check_field_types(self)
        if self.shard_mb < 1:
            raise UserError(f"--shard-mb: expected at least 1, got {self.shard_mb}")
        if not self.to:
            raise UserError("--to: expected the pack directory to write, got nothing")


def add_parser(subparsers):
    """Add ``jaxnn pack`` to an ``argparse`` subparsers object; returns its parser."""
    p = subparsers.add_parser(
        "pack",
        help="write a dataset as memory-mapped shards, to train on data larger than memory",
        description="Write a dataset's train, validation and test splits as memory-mapped .npy "
        "shards with a manifest; jaxnn train --dataset DIR then streams batches from them.",
    )
    add_flags(p, PackOptions)
    return p


def run(options: PackOptions) -> int:
    """``jaxnn pack``: load, carve, write; one line says what was written."""
    from tqdm.auto import tqdm

    from jaxnn import data
    from jaxnn.data import streaming

    out = Path(options.to).expanduser()
    if streaming.is_pack(out):
        raise UserError(f"--to {out}: already holds a pack; choose another directory")
    splits = data.load(
        options.dataset, seed=options.seed, **parse_pairs(options.data_option, "--data-option")
    )
    total = len(splits.train) + len(splits.val) + len(splits.test)
    with tqdm(total=total, unit="ex", desc="pack", leave=False, disable=None) as bar:
        manifest = streaming.pack(
            splits,
            out,
            shard_bytes=options.shard_mb << 20,
            storage=options.storage,
            progress=bar.update,
        )
    sizes = f"{len(splits.train)} train / {len(splits.val)} val / {len(splits.test)} test"
    print(f"packed {splits.info.name} ({sizes}) into {manifest.parent}: jaxnn train --dataset "
          f"{manifest.parent}")  # fmt: skip
    return 0
