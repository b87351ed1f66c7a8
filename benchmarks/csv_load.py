"""How fast does ``csv:PATH`` load? ``load_source`` on a large numeric CSV, and other parsers.

Writes a ``--rows`` x ``--cols`` CSV of random float32 features (``%.6g``) plus an integer label
column (string labels with ``--string-labels``) into a temporary directory, then times
``jaxnn.data.sources.load_source("csv:...")`` end to end (parse, label ids, seeded stratified
split): the median wall-clock and process CPU seconds of ``--repeats`` runs. On a shared machine
the CPU figure is the one that does not depend on the other processes.

The parser jaxnn uses is ``numpy.loadtxt`` with a fixed delimiter and ``comments=None``: since
NumPy 1.23 it is a C tokenizer, so ``csv:`` needs nothing beyond NumPy. With ``--compare`` the
script also times the raw parse alone with ``numpy.loadtxt``, ``numpy.fromstring(sep=",")``, and,
when they are installed, pandas (C engine) and pyarrow, so the choice can be re-checked.

Usage:

    python -m benchmarks.csv_load [--rows 1000000] [--cols 50] [--repeats 3] [--compare]
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from jaxnn.data.sources import load_source

PARSER = "numpy.loadtxt (C tokenizer, NumPy >= 1.23)"


def write_csv(
    path: Path, rows: int, cols: int, *, strings: bool = False, seed: int = 0, chunk: int = 100_000
) -> None:
    """Random features ``%.6g`` and a label in 0..9 (``c0``..``c9`` with ``strings``)."""
    rng = np.random.default_rng(seed)
    with open(path, "w") as f:
        f.write(",".join(f"x{i}" for i in range(cols)) + ",label\n")
        for lo in range(0, rows, chunk):  # in chunks, to bound memory
            n = min(chunk, rows - lo)
            x = rng.standard_normal((n, cols)).astype(np.float32)  # (n, cols)
            labels = rng.integers(0, 10, n)  # (n,)
            if strings:
                table = np.column_stack([x.astype(str), np.char.add("c", labels.astype(str))])
                np.savetxt(f, table, fmt="%s", delimiter=",")
            else:
                table = np.column_stack([x, labels])
                np.savetxt(f, table, fmt=["%.6g"] * cols + ["%d"], delimiter=",")


def median_seconds(fn, repeats: int) -> tuple[float, float]:
    """Median wall-clock and median process CPU seconds of ``fn()`` over ``repeats`` calls."""
    wall, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return statistics.median(wall), statistics.median(cpu)


def _fromstring(path: Path):
    data = path.read_bytes()
    body = data[data.index(b"\n") + 1 :].replace(b"\n", b",").decode("ascii")
    return np.fromstring(body, dtype=np.float32, sep=",")


def _pandas(path: Path):
    import pandas as pd

    return pd.read_csv(path).to_numpy(np.float32)


def _pyarrow(path: Path):
    import pyarrow.csv as pacsv

    return np.column_stack([c.to_numpy() for c in pacsv.read_csv(path).columns])


def compare(path: Path, repeats: int) -> dict[str, tuple[float, float]]:
    """Median (wall, CPU) seconds of the raw parse alone, per available parser."""
    parsers = {
        "numpy.loadtxt": lambda: np.loadtxt(
            path, delimiter=",", skiprows=1, dtype=np.float32, comments=None
        ),
        "numpy.fromstring": lambda: _fromstring(path),
    }
    if importlib.util.find_spec("pandas"):
        parsers["pandas.read_csv (C engine)"] = lambda: _pandas(path)
    if importlib.util.find_spec("pyarrow"):
        parsers["pyarrow.csv.read_csv"] = lambda: _pyarrow(path)
    return {name: median_seconds(fn, repeats) for name, fn in parsers.items()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--cols", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--compare", action="store_true", help="also time other parsers")
    parser.add_argument(
        "--string-labels", action="store_true", help="labels c0..c9 (the non-numeric path)"
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.csv"
        start = time.perf_counter()
        write_csv(path, args.rows, args.cols, strings=args.string_labels)
        size_mb = path.stat().st_size / 1e6
        print(f"wrote {args.rows} x {args.cols} CSV, {size_mb:.0f} MB, in "
              f"{time.perf_counter() - start:.1f} s")  # fmt: skip
        splits = load_source(f"csv:{path}")
        seconds, cpu = median_seconds(lambda: load_source(f"csv:{path}"), args.repeats)
        print(f"parser: {PARSER}")
        print(
            f"load_source('csv:...'): {seconds:.2f} s wall, {cpu:.2f} s CPU (medians of "
            f"{args.repeats}), {args.rows / seconds / 1e6:.2f} M rows/s; train/val/test "
            f"{len(splits.train)}/{len(splits.val)}/{len(splits.test)}"
        )
        if args.compare:
            for name, (s, c) in compare(path, args.repeats).items():
                print(f"  parse only, {name}: {s:.2f} s wall, {c:.2f} s CPU")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
