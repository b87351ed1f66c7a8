"""Train/validation logs — Chapter 15: "their relationship reveals optimization progress,
overfitting, underfitting, and data issues".

One record per epoch goes to three places: a line on the terminal, a line of ``OUT/metrics.jsonl``,
and TensorBoard event files under ``OUT/tensorboard/``.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

__all__ = ["MetricsLogger", "format_record", "read_metrics"]

_SHOWN = ("train_loss", "train_accuracy", "val_loss", "val_accuracy", "grad_norm", "lr")


def _json_value(v):
    if isinstance(v, float) and not math.isfinite(v):
        return None  # JSON has no NaN/inf
    return v


def format_record(record: dict, epochs: int | None = None) -> str:
    """One terminal line: ``epoch 3/20  train_loss 0.4120  ...  1.3s``."""
    head = f"epoch {record['epoch']}" + (f"/{epochs}" if epochs else "")
    parts = [head]
    for k in _SHOWN:
        v = record.get(k)
        if isinstance(v, (int, float)) and math.isfinite(v):
            parts.append(f"{k} {v:.4g}" if k in ("grad_norm", "lr") else f"{k} {v:.4f}")
    if "seconds" in record:
        parts.append(f"{record['seconds']:.2f}s")
    return "  ".join(parts)


def read_metrics(path) -> list[dict]:
    """Read ``metrics.jsonl`` back as a list of records."""
    path = Path(path)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


class MetricsLogger:
    """Writes per-epoch records to the terminal, ``metrics.jsonl`` and TensorBoard.

    Args:
      out_dir: run directory, or ``None`` for terminal only.
      epochs: total epochs, shown as ``epoch k/N``.
      keep_epochs: on resume, records of epochs ``<= keep_epochs`` are kept and later ones (written
        by the interrupted run after its last checkpoint) are dropped, so the file has one line per
        epoch.
      verbose: print to the terminal.
      tensorboard: also write TensorBoard event files.
    """

    def __init__(self, out_dir=None, *, epochs=None, keep_epochs=0, verbose=True, tensorboard=True):
        self.epochs, self.verbose = epochs, verbose
        self._file = self._writer = None
        if out_dir is None:
            return
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        path = out_dir / "metrics.jsonl"
        kept = [r for r in read_metrics(path) if r["epoch"] <= keep_epochs]
        tmp = path.with_suffix(".jsonl.tmp")
        tmp.write_text("".join(json.dumps(r) + "\n" for r in kept))
        os.replace(tmp, path)
        self._file = path.open("a")
        if tensorboard:
            from tensorboardX import SummaryWriter

            self._writer = SummaryWriter(str(out_dir / "tensorboard"))

    def log_epoch(self, record: dict) -> None:
        """Write one epoch's record (must hold ``epoch``) everywhere."""
        record = {k: _json_value(v) for k, v in record.items()}
        if self._file is not None:  # the file first: a line on screen is a line on disk
            self._file.write(json.dumps(record) + "\n")
            self._file.flush()
        if self.verbose:
            print(format_record(record, self.epochs), flush=True)
        if self._writer is not None:
            for k, v in record.items():
                if k != "epoch" and isinstance(v, (int, float)):
                    group = k.split("_", 1)[0] if k.startswith(("train_", "val_")) else "opt"
                    self._writer.add_scalar(f"{group}/{k}", v, record["epoch"])
            self._writer.flush()

    def close(self) -> None:
        """Flush and close the files."""
        if self._file is not None:
            self._file.close()
        if self._writer is not None:
            self._writer.close()
