"""What ``jaxnn eval`` reports beside loss and accuracy — Chapter 14: accuracy alone hides the
classes a model gets wrong.

For classification: per class precision, recall, F1 and support (from
:func:`jaxnn.diagnostics.class_report`), their macro average, and the confusion matrix (rows:
the true class, columns: the predicted one), written to ``RUN/eval.json`` and drawn in
``RUN/eval_confusion.png``. For regression: the mean absolute error and R² (``1 - SS_res /
SS_tot``, over every output), in ``RUN/eval.json``. Both files are written through
:mod:`jaxnn._contained` (never through a link).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from jaxnn import _contained
from jaxnn.train import run as run_lib

__all__ = ["model_outputs", "classification", "regression", "write", "table", "REPORT", "FIGURE"]

REPORT, FIGURE = "eval.json", "eval_confusion.png"


def model_outputs(model, params, model_state, x, *, batch_size: int = 1000) -> np.ndarray:
    """The model's outputs for already standardized inputs ``x``, batch by batch."""
    import jax

    forward = jax.jit(lambda p, s, xb: model.apply(p, xb, state=s)[0])
    outs = [
        np.asarray(forward(params, model_state, x[i : i + batch_size]))
        for i in range(0, len(x), batch_size)
    ]
    return np.concatenate(outs)


def _finite(value: float):
    return float(value) if math.isfinite(value) else None


def _f1(precision: float, recall: float) -> float:
    """The harmonic mean of ``precision`` and ``recall``; 0 when either is 0 or undefined."""
    if not (math.isfinite(precision) and math.isfinite(recall)) or precision + recall == 0:
        return 0.0
    return 2 * precision * recall / (precision + recall)


def classification(outputs, labels, class_names=None) -> dict:
    """Per-class precision, recall, F1 and support, their macro average and the confusion
    matrix of ``outputs`` (N, C) against ``labels`` (N,); ``None`` where a value is undefined
    (a class never predicted has no precision)."""
    from jaxnn.diagnostics import class_report

    outputs, labels = np.asarray(outputs), np.asarray(labels)
    classes = outputs.shape[-1]
    report = class_report(outputs, labels, classes)
    pred = outputs.argmax(axis=-1)
    confusion = np.zeros((classes, classes), np.int64)
    np.add.at(confusion, (labels, pred), 1)
    names = list(class_names) if class_names else [str(c) for c in range(classes)]
    rows, f1s = [], []
    for c in range(classes):
        p, r = report.precision[c], report.recall[c]
        f1 = _f1(p, r)
        if report.support[c]:
            f1s.append(f1)
        rows.append(
            {"class": names[c], "precision": _finite(p), "recall": _finite(r),
             "f1": _finite(f1) if report.support[c] or report.predicted[c] else None,
             "support": report.support[c]}
        )  # fmt: skip
    return {
        "per_class": rows,
        "macro_f1": float(np.mean(f1s)) if f1s else None,
        "confusion": confusion.tolist(),
        "class_names": names,
    }


def regression(outputs, targets) -> dict:
    """The mean absolute error and R² of ``outputs`` against ``targets`` (every output counted;
    R² is ``None`` when the targets do not vary)."""
    pred = np.asarray(outputs, np.float64).reshape(len(outputs), -1)
    y = np.asarray(targets, np.float64).reshape(len(targets), -1)
    ss_tot = float(((y - y.mean(axis=0)) ** 2).sum())
    ss_res = float(((y - pred) ** 2).sum())
    return {
        "mae": float(np.abs(y - pred).mean()),
        "r2": 1.0 - ss_res / ss_tot if ss_tot > 0 else None,
    }


def write(out, record: dict) -> list[Path]:
    """Write ``record`` to ``out/eval.json`` and, with a confusion matrix, draw it in
    ``out/eval_confusion.png``; returns the paths written."""
    out = Path(out)
    written = [run_lib.write_json(out / REPORT, record)]
    if "confusion" in record:
        written.append(_draw_confusion(out / FIGURE, record))
    return written


def _draw_confusion(path: Path, record: dict) -> Path:
    from matplotlib.figure import Figure

    matrix, names = np.asarray(record["confusion"]), record["class_names"]
    size = min(2.5 + 0.45 * len(names), 14)
    fig = Figure(figsize=(size, size * 0.85))
    ax = fig.subplots()
    image = ax.imshow(matrix, cmap="Blues")
    fig.colorbar(image, ax=ax, fraction=0.046)
    ticks = range(len(names))
    ax.set_xticks(ticks, names, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(ticks, names, fontsize=8)
    if len(names) <= 20:
        high = matrix.max() / 2 if matrix.size else 0
        for (i, j), n in np.ndenumerate(matrix):
            ax.text(j, i, str(n), ha="center", va="center", fontsize=8,
                    color="white" if n > high else "black")  # fmt: skip
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(
        f"confusion on {record.get('split', '?')} ({record.get('examples', '?')} examples)"
    )
    fig.tight_layout()
    with _contained.replacing(path) as f:
        fig.savefig(f, dpi=90, format="png")
    return path


def table(record: dict) -> str:
    """The per-class rows as a plain-text table (classification), or the regression scores."""
    if "per_class" not in record:
        r2 = record.get("r2")
        return f"mae {record['mae']:.4g}  r2 {'n/a' if r2 is None else f'{r2:.4f}'}"
    width = max(5, *(len(r["class"]) for r in record["per_class"]))
    lines = [f"{'class':<{width}}  precision  recall  f1      support"]
    for r in record["per_class"]:
        cells = [
            ("   n/a" if r[k] is None else f"{r[k]:.4f}") for k in ("precision", "recall", "f1")
        ]
        lines.append(f"{r['class']:<{width}}  {cells[0]:>9}  {cells[1]:>6}  {cells[2]:>6}  "
                     f"{r['support']:>7}")  # fmt: skip
    macro = record.get("macro_f1")
    lines.append(f"macro f1 {'n/a' if macro is None else f'{macro:.4f}'}")
    return "\n".join(lines)
