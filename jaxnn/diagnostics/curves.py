"""Underfitting and overfitting, read from the learning curves (Chapter 14).

:func:`fit_diagnosis` judges a run from the per-epoch records ``fit`` returns.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import numpy as np

from jaxnn.diagnostics.report import Report

__all__ = ["FitReport", "fit_diagnosis"]


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


def _curve_numbers(history: list) -> dict:
    """The numbers :class:`FitReport` carries, from the history's columns."""
    name = "fit_diagnosis"
    train_loss = _column(name, history, "train_loss")
    val_loss = _column(name, history, "val_loss")
    final_train = _last(_column(name, history, "train_accuracy", required=False))
    final_val = _last(_column(name, history, "val_accuracy", required=False))
    best = int(np.argmin(val_loss))  # 0-based
    both = final_train is not None and final_val is not None
    return {
        "epochs": len(history),
        "loss_drop": float(1.0 - train_loss[-1] / train_loss[0]) if train_loss[0] > 0 else 0.0,
        "final_train_accuracy": final_train,
        "final_val_accuracy": final_val,
        "accuracy_gap": final_train - final_val if both else None,
        "best_val_epoch": best + 1,
        "epochs_since_best_val": len(history) - 1 - best,
        "val_loss_rise": float(val_loss[-1] - val_loss[best]),
        "train_loss_fall_since_best": float(train_loss[best] - train_loss[-1]),
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
    min_val_rise: float = 0.0,
    max_accuracy_gap: float = 0.15,
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
      min_val_rise: rise of the validation loss above its minimum that counts as overfitting.
      max_accuracy_gap: train-minus-validation accuracy gap above which the run overfits.

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
    n = _curve_numbers(history)
    verdict, reasons = "underfitting", _underfit_reasons(n, min_train_accuracy, min_loss_drop)
    if not reasons:
        reasons = _overfit_reasons(n, overfit_epochs, min_val_rise, max_accuracy_gap)
        verdict = "overfitting" if reasons else "healthy"
    message = "; ".join(reasons) or (
        f"train loss fell by {n['loss_drop']:.0%}, best val epoch {n['best_val_epoch']} "
        f"of {n['epochs']}"
    )
    return FitReport(verdict, message, tuple(reasons), **n)
