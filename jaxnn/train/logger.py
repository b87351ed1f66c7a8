"""Train/validation logs — Chapter 15: "their relationship reveals optimization progress,
overfitting, underfitting, and data issues".

One record per epoch goes to four places: a line on the terminal (or log file), a line of
``OUT/metrics.jsonl``, TensorBoard event files, and the picture ``OUT/curves.png`` (redrawn each
epoch: train and validation loss and accuracy, the best epoch marked, the test score once at the
end).

TensorBoard follows Keras's layout: each invocation writes a new folder
``OUT/tensorboard/<time>/`` with ``train/`` and ``validation/`` runs that share tag names
(``epoch_loss``, ``epoch_accuracy``), so the two curves overlay; the x-axis is the optimizer step.

Every file goes through :mod:`jaxnn._contained`: ``metrics.jsonl`` is rewritten by replacing it
and then appended to without following a link, ``curves.png`` is drawn into a new file that
replaces the old one, and a link at ``tensorboard/`` is refused. On resume the file is rebuilt
from the checkpoint's own history (verified by the checkpoint's digest): records the file has
beyond the checkpoint's epoch are dropped, and records that disagree with it (a torn or edited
file) are replaced, with one line saying so.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

from jaxnn import _contained
from jaxnn.errors import UserError
from jaxnn.train.events import EventWriter

__all__ = [
    "MetricsLogger",
    "format_record",
    "format_duration",
    "read_metrics",
    "plot_curves",
    "json_safe",
]

_SHOWN = ("train_loss", "train_accuracy", "val_loss", "val_accuracy", "grad_norm", "lr")


def json_safe(record: dict) -> dict:
    """``record`` with every non-finite float replaced by None (JSON has no NaN or Infinity)."""
    return {
        k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in record.items()
    }


def format_record(record: dict, epochs: int | None = None) -> str:
    """One terminal line: ``epoch 3/20  train_loss 0.4120  ...  1.30s (wall 1.52s)``.

    ``seconds`` is the epoch's training plus evaluation; ``wall_seconds``, when there, the clock
    time since the previous epoch's line (logging, the curves and the checkpoint included).
    """
    head = f"epoch {record['epoch']}" + (f"/{epochs}" if epochs else "")
    parts = [head]
    for k in _SHOWN:
        v = record.get(k)
        if isinstance(v, (int, float)) and math.isfinite(v):
            parts.append(f"{k} {v:.4g}" if k in ("grad_norm", "lr") else f"{k} {v:.4f}")
    if isinstance(record.get("seconds"), (int, float)):
        wall = record.get("wall_seconds")
        clock = f" (wall {wall:.2f}s)" if isinstance(wall, (int, float)) else ""
        parts.append(f"{record['seconds']:.2f}s{clock}")
    return "  ".join(parts)


def format_duration(seconds: float) -> str:
    """``75.3`` -> ``"1m15s"``; ``4000`` -> ``"1h06m"``; under a minute, ``"12s"``."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def read_metrics(path) -> list[dict]:
    """Read ``metrics.jsonl`` back as a list of records.

    A last line without its newline is a write cut short by a crash: it is dropped.

    Raises:
      UserError: naming the file and the line, if any other line is not a JSON object with an
        integer ``epoch``.
    """
    path = Path(path)
    try:
        text = _contained.read_bytes(path, name="read_metrics").decode(errors="replace")
    except FileNotFoundError:
        return []
    lines = text.split("\n")
    if not text.endswith("\n"):
        lines = lines[:-1]  # torn last line
    records = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise UserError(f"{path}:{number}: expected one JSON record per line, {err}") from None
        if not isinstance(record, dict) or not isinstance(record.get("epoch"), int):
            raise UserError(f"{path}:{number}: expected a record with an integer epoch")
        records.append(record)
    return records


def plot_curves(history: list[dict], path, *, best_epoch: int = 0, test: dict | None = None):
    """Draw train and validation loss and accuracy per epoch into ``path`` (a PNG).

    The best epoch gets a dashed line; ``test`` (``{"test_loss", "test_accuracy"}``) is drawn once
    as a point at the best epoch.
    """
    from matplotlib.figure import Figure  # the object API: no pyplot, no global backend

    fig = Figure(figsize=(10, 3.6))
    for ax, what in zip(fig.subplots(1, 2), ("loss", "accuracy"), strict=True):
        _draw_metric(ax, history, what, best_epoch, (test or {}).get(f"test_{what}"))
    fig.tight_layout()
    with _contained.replacing(path) as f:  # a new file, renamed over the old: never a link
        fig.savefig(f, dpi=90, format="png")


def _draw_metric(ax, history: list[dict], what: str, best_epoch: int, test_value) -> None:
    """One panel of :func:`plot_curves`: train and validation ``what`` per epoch, the best epoch
    and the test score."""
    for split, label in (("train", "train"), ("val", "validation")):
        _draw_curve(ax, history, f"{split}_{what}", label)
    if best_epoch:
        ax.axvline(best_epoch, color="grey", linestyle="--", label=f"best epoch {best_epoch}")
    if test_value is not None and best_epoch:
        ax.plot([best_epoch], [test_value], "k*", markersize=11, label=f"test {test_value:.4g}")
    ax.set_xlabel("epoch")
    ax.set_ylabel(what)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)


def _draw_curve(ax, history: list[dict], key: str, label: str) -> None:
    """``key`` per epoch, if any epoch has a finite value of it (a gap where one has none)."""
    values = [r.get(key) for r in history]
    if any(v is not None and math.isfinite(v) for v in values):
        epochs = [r["epoch"] for r in history]
        ax.plot(epochs, [math.nan if v is None else v for v in values], "-", label=label)


class MetricsLogger:
    """Writes per-epoch records to the terminal, ``metrics.jsonl``, TensorBoard and a picture.

    Args:
      out_dir: run directory, or ``None`` for terminal only.
      epochs: total epochs, shown as ``epoch k/N``.
      keep_epochs: on resume, records of epochs ``<= keep_epochs`` are kept and later ones (written
        by the interrupted run after its last checkpoint) are dropped, so the file has one line per
        epoch.
      history: on resume, the checkpoint's own records (its loop state): the file is rewritten
        with exactly these, and if its records up to their last epoch differ (a torn or edited
        file), one line says so. Takes the place of ``keep_epochs``.
      verbose: print to the terminal.
      tensorboard: also write TensorBoard event files.
      curves: also draw ``curves.png``.
    """

    def __init__(
        self, out_dir=None, *, epochs=None, keep_epochs=0, history=None, verbose=True,
        tensorboard=True, curves=True,
    ):  # fmt: skip
        self.epochs, self.verbose = epochs, verbose
        self._file, self._writers, self._curves, self.history = None, {}, None, []
        if out_dir is None:
            return
        out_dir = _contained.ensure_dir("MetricsLogger", out_dir)
        path = out_dir / "metrics.jsonl"
        self.history = self._kept(path, history, keep_epochs)
        _contained.write_replacing(
            path, "".join(json.dumps(r) + "\n" for r in self.history).encode()
        )
        self._file = _contained.open_append(path)
        self._curves = out_dir / "curves.png" if curves else None
        if tensorboard:
            root = _contained.ensure_dir("MetricsLogger", out_dir / "tensorboard")
            run = _contained.new_dir(
                "MetricsLogger", root, f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
            )
            self._writers = {k: EventWriter(run / k) for k in ("train", "validation")}

    def _kept(self, path: Path, history, keep_epochs: int) -> list[dict]:
        """The records the file starts with: the checkpoint's ``history``, else the file's own
        up to ``keep_epochs`` (none for a fresh run: the file is not even read)."""
        if history is not None:
            return self._from_checkpoint(path, [json_safe(r) for r in history])
        if keep_epochs:
            return [r for r in read_metrics(path) if r["epoch"] <= keep_epochs]
        return []

    def _from_checkpoint(self, path: Path, history: list[dict]) -> list[dict]:
        """``history``, saying so when the file's records up to its last epoch differ."""
        last = history[-1]["epoch"] if history else 0
        try:
            on_disk = [r for r in read_metrics(path) if r["epoch"] <= last]
        except UserError as err:  # a garbled line: the checkpoint's records replace the file
            on_disk = [{"unreadable": str(err)}]
        if on_disk != history and self.verbose:
            print(
                f"{path}: its records of epochs 1-{last} disagree with the checkpoint's (a torn "
                "or edited file); rewritten from the checkpoint",
                flush=True,
            )
        return list(history)

    def log_epoch(self, record: dict, *, best_epoch: int = 0) -> None:
        """Write one epoch's record (must hold ``epoch``; ``step`` is TensorBoard's x-axis)."""
        record = json_safe(record)
        if self._file is not None:  # the file first: a line on screen is a line on disk
            self._file.write(json.dumps(record) + "\n")
        if self.verbose:
            print(format_record(record, self.epochs), flush=True)
        self._tensorboard(record)
        self.history.append(record)
        self.draw(best_epoch=best_epoch)

    def _tensorboard(self, record: dict) -> None:
        if not self._writers:
            return
        step = record.get("step", record["epoch"])
        tags: dict[str, dict[str, float]] = {"train": {}, "validation": {}}
        for k, v in record.items():
            if k in ("epoch", "step") or not isinstance(v, (int, float)):
                continue
            split, _, name = k.partition("_")
            if split in ("train", "val"):
                tags["train" if split == "train" else "validation"][f"epoch_{name}"] = v
            else:
                tags["train"][f"optimizer/{k}"] = v
        for split, writer in self._writers.items():
            writer.scalars(step, tags[split])
            writer.flush()

    def draw(self, *, best_epoch: int = 0, test: dict | None = None) -> None:
        """Redraw ``curves.png``, with the test score once the run has one."""
        if self._curves is not None and self.history:
            plot_curves(self.history, self._curves, best_epoch=best_epoch, test=test)

    def close(self) -> None:
        """Flush and close the files."""
        if self._file is not None:
            self._file.close()
        for writer in self._writers.values():
            writer.close()
