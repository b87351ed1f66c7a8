"""Underfitting, overfitting and divergence, read from what a run leaves (Chapter 14).

:func:`fit_diagnosis` judges a run from the per-epoch records ``fit`` returns;
:func:`divergence_report` says whether the run diverged, from its summary and records.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import numpy as np

from jaxnn.diagnostics.report import Report

__all__ = ["FitReport", "DivergenceReport", "fit_diagnosis", "divergence_report"]


@dataclasses.dataclass(frozen=True)
class FitReport(Report):
    """What :func:`fit_diagnosis` found (verdict ``healthy``, ``underfitting``, ``overfitting``).

    Attributes:
      reasons: one line per rule that fired (empty when healthy).
      epochs: number of records.
      loss_drop: ``1 - L_E / L_1``, the relative fall of the training loss.
      final_train_accuracy, final_val_accuracy: the last epoch's (``None`` when not recorded).
      accuracy_gap: their difference (``None`` without accuracies).
      best_val_epoch: the epoch of the lowest validation loss, 1-based.
      best_epoch: the best epoch by the run's monitored metric, as the training loop chose it
        (its ``summary.json``'s ``best_epoch``), 1-based.
      monitor: that metric.
      epochs_since_best_val: ``E - b``.
      val_loss_rise: ``V_E - V_b``.
      train_loss_fall_since_best: ``L_b - L_E``.
    """

    reasons: tuple
    epochs: int
    loss_drop: float
    final_train_accuracy: float | None
    final_val_accuracy: float | None
    accuracy_gap: float | None
    best_val_epoch: int
    epochs_since_best_val: int
    val_loss_rise: float
    train_loss_fall_since_best: float
    best_epoch: int
    monitor: str

    PROBLEMS = ("underfitting", "overfitting")


def _column(name: str, history, key: str, required: bool = True):
    values = [record.get(key) for record in history]
    if any(v is None for v in values):
        if required:
            raise ValueError(
                f"{name}: expected every history record to have {key!r}, got keys "
                f"{sorted(history[0])}"
            )
        return None
    return np.asarray(values, dtype=np.float64)


def _last(column) -> float | None:
    return None if column is None else float(column[-1])


def _monitored_best(history: list, monitor: str, min_delta: float) -> int:
    """The best epoch (1-based) by ``monitor``, by the training loop's own rule: the first
    epoch that beat every earlier one by more than ``min_delta``."""
    sign = -1.0 if monitor == "val_loss" else 1.0
    best_value, best = None, 0
    for i, value in enumerate(_column("fit_diagnosis", history, monitor)):
        if best_value is None or sign * (value - best_value) > min_delta:
            best_value, best = value, i
    return int(history[best].get("epoch", best + 1))


def _curve_numbers(history: list, monitor: str, min_delta: float) -> dict:
    """The numbers :class:`FitReport` carries, from the history's columns."""
    name = "fit_diagnosis"
    train_loss = _column(name, history, "train_loss")
    val_loss = _column(name, history, "val_loss")
    final_train = _last(_column(name, history, "train_accuracy", required=False))
    final_val = _last(_column(name, history, "val_accuracy", required=False))
    best = int(np.argmin(val_loss))  # 0-based
    gap = None if final_train is None or final_val is None else final_train - final_val
    return {
        "epochs": len(history),
        "loss_drop": float(1.0 - train_loss[-1] / train_loss[0]) if train_loss[0] > 0 else 0.0,
        "final_train_accuracy": final_train,
        "final_val_accuracy": final_val,
        "accuracy_gap": gap,
        "best_val_epoch": best + 1,
        "epochs_since_best_val": len(history) - 1 - best,
        "val_loss_rise": float(val_loss[-1] - val_loss[best]),
        "train_loss_fall_since_best": float(train_loss[best] - train_loss[-1]),
        "best_epoch": _monitored_best(history, monitor, min_delta),
        "monitor": monitor,
    }


def _underfit_reasons(n: dict, min_train_accuracy: float, min_loss_drop: float) -> list[str]:
    out = []
    final_train = n["final_train_accuracy"]
    if final_train is not None and final_train < min_train_accuracy:
        out.append(f"final train accuracy {final_train:.3f} < {min_train_accuracy}")
    if n["loss_drop"] < min_loss_drop:
        out.append(f"train loss fell by {n['loss_drop']:.3f} of its first value < {min_loss_drop}")
    return out


def _overfit_reasons(
    n: dict, overfit_epochs: int, min_val_rise: float, max_accuracy_gap: float
) -> list[str]:
    out = []
    since, rise = n["epochs_since_best_val"], n["val_loss_rise"]
    if since >= overfit_epochs and n["train_loss_fall_since_best"] > 0 and rise > min_val_rise:
        out.append(
            f"val loss rose {rise:.3f} over the {since} epochs since its best while train loss fell"
        )
    gap = n["accuracy_gap"]
    if gap is not None and gap > max_accuracy_gap:
        out.append(f"train - val accuracy gap {gap:.3f} > {max_accuracy_gap}")
    return out


def fit_diagnosis(
    history: Sequence[Mapping],
    *,
    min_train_accuracy: float = 0.6,
    min_loss_drop: float = 0.1,
    overfit_epochs: int = 3,
    min_val_rise: float = 0.02,
    max_accuracy_gap: float = 0.15,
    monitor: str = "val_loss",
    min_delta: float = 0.0,
) -> FitReport:
    """Say whether a run underfits, overfits or looks healthy, from its per-epoch records.

    Chapter 14: "Underfitting appears when both training and validation performance are poor ...
    Overfitting appears when training performance is strong but validation performance is weak."

    With ``L_t`` the training loss, ``V_t`` the validation loss and ``b = argmin_t V_t`` (epochs
    1..E), the rules, checked in this order, are:

    - underfitting: the final training accuracy is below ``min_train_accuracy`` (when recorded),
      or the training loss fell by less than a share ``min_loss_drop`` of its first value,
      ``1 - L_E / L_1 < min_loss_drop``;
    - overfitting: the validation loss has not improved for ``E - b >= overfit_epochs`` epochs
      while the training loss kept falling (``L_E < L_b``) and the validation loss rose
      (``V_E - V_b > min_val_rise``); or the final train-minus-validation accuracy gap exceeds
      ``max_accuracy_gap``;
    - healthy otherwise.

    Args:
      history: per-epoch records as ``fit`` returns them (``FitResult.history``), each with
        ``train_loss`` and ``val_loss`` and optionally ``train_accuracy`` and ``val_accuracy``;
        at least two epochs.
      min_train_accuracy: final training accuracy below which the run underfits.
      min_loss_drop: relative fall of the training loss below which the run underfits.
      overfit_epochs: epochs since the best validation loss that count as overfitting.
      min_val_rise: rise of the validation loss above its minimum that counts as overfitting,
        in nats: a rise of a few thousandths is noise (a run at 100% validation accuracy whose
        validation loss went from 0.003 to 0.007 is no overfitting run).
      max_accuracy_gap: train-minus-validation accuracy gap above which the run overfits.
      monitor, min_delta: the run's monitored metric and its smallest improvement
        (:class:`jaxnn.train.FitConfig`): the report's ``best_epoch`` is the one the training
        loop kept, so that it agrees with the run's ``summary.json``.

    Returns:
      A :class:`FitReport`; its message is the reasons, or for a healthy run how far the
      training loss fell and the epoch of the best validation loss.

    Raises:
      ValueError: with fewer than two records or a record missing ``train_loss``/``val_loss``.
    """
    history = list(history)
    if len(history) < 2:
        raise ValueError(
            f"fit_diagnosis: expected a history of at least 2 epochs, got {len(history)}"
        )
    n = _curve_numbers(history, monitor, min_delta)
    verdict, reasons = "underfitting", _underfit_reasons(n, min_train_accuracy, min_loss_drop)
    if not reasons:
        reasons = _overfit_reasons(n, overfit_epochs, min_val_rise, max_accuracy_gap)
        verdict = "overfitting" if reasons else "healthy"
    message = "; ".join(reasons) or (
        f"train loss fell by {n['loss_drop']:.0%}, best epoch {n['best_epoch']} of "
        f"{n['epochs']} by {monitor}"
        + (f" (lowest val_loss at epoch {n['best_val_epoch']})" if monitor != "val_loss" else "")
    )
    return FitReport(verdict, message, tuple(reasons), **n)


@dataclasses.dataclass(frozen=True)
class DivergenceReport(Report):
    """What :func:`divergence_report` found (verdict ``healthy`` or ``diverged``).

    Attributes:
      stopped_reason: the summary's ``stopped_reason`` (``None`` without a summary).
      epoch: the epoch it diverged in, 1-based (``None`` if it did not).
      reason: the divergence guard's message, or the record with the non-finite loss.
    """

    stopped_reason: str | None
    epoch: int | None
    reason: str

    PROBLEMS = ("diverged",)


def _nonfinite_epoch(history) -> int | None:
    for record in history:
        for key in ("train_loss", "val_loss"):
            value = record.get(key)
            if value is None or not np.isfinite(float(value)):
                return int(record.get("epoch", 0)) or None
    return None


def divergence_report(summary: Mapping | None, history: Sequence[Mapping] = ()) -> DivergenceReport:
    """Whether a run diverged: the guard stopped it, or a recorded loss is not finite.

    Chapter 14 (and Chapter 8): a learning rate too high makes the loss explode within a few
    steps; the training loop's guard then stops the run before applying a non-finite update
    (``summary["stopped_reason"] == "diverged"``, its message naming the step). A record whose
    training or validation loss is missing or not finite also counts. Everything else a doctor
    sees in such a run (untrained weights, a class never predicted) follows from it.

    Args:
      summary: the run's ``summary.json`` (``None`` if it has none).
      history: its per-epoch records (``metrics.jsonl``).

    Returns:
      A :class:`DivergenceReport`.
    """
    stopped = None if summary is None else summary.get("stopped_reason")
    if summary is not None and stopped == "diverged":
        epoch = int(summary.get("epochs_run", 0)) + 1  # the guard stops before logging the epoch
        reason = str(summary.get("message") or "the divergence guard stopped the run")
        return DivergenceReport("diverged", f"{reason} (epoch {epoch})", stopped, epoch, reason)
    nonfinite = _nonfinite_epoch(history)
    if nonfinite is not None:
        reason = f"the loss recorded for epoch {nonfinite} is not finite"
        return DivergenceReport("diverged", reason, stopped, nonfinite, reason)
    where = f"stopped: {stopped}" if stopped else "no summary"
    message = f"every recorded loss is finite ({where})"
    return DivergenceReport("healthy", message, stopped, None, "")
