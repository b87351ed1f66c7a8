"""Labels and classes (Chapter 14): mislabeled examples, class imbalance, labels that carry no
signal, and the classes a model ignores.

:func:`suspicious_labels` is pure ``jax.numpy`` and composes with ``jit``; the others return a
:class:`~jaxnn.diagnostics.report.Report`.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np

from jaxnn._checks import check_integer_dtype, check_labels_in_range, check_positive_int
from jaxnn.diagnostics._common import flat_examples, nearest
from jaxnn.diagnostics.report import Report

__all__ = [
    "BalanceReport",
    "LabelSignalReport",
    "ClassReport",
    "suspicious_labels",
    "class_balance",
    "label_signal",
    "class_report",
]


# ---------------------------------------------------------------------------------------------
# Mislabeled examples


def suspicious_labels(per_example_loss: jax.Array, *, fraction: float = 0.1) -> jax.Array:
    """Indices of the ``k = max(1, round(fraction * N))`` examples with the highest loss.

    Chapter 14: mislabeled examples. A trained model that learned the clean majority assigns its
    highest loss ``l_i = -log p(y_i | x_i)`` to examples whose label disagrees with the rest of
    the data, so the top-loss examples are the first ones to inspect.

    Args:
      per_example_loss: losses (N,) under a trained model.
      fraction: share of the examples to flag, in (0, 1].

    Returns:
      int32 indices (k,), highest loss first.

    Raises:
      ValueError: if the losses are not (N,) with N >= 1 or ``fraction`` is outside (0, 1].
    """
    name = "suspicious_labels"
    if np.ndim(per_example_loss) != 1 or np.shape(per_example_loss)[0] == 0:
        raise ValueError(
            f"{name}: expected per-example losses of shape (N,) with N >= 1, got shape "
            f"{np.shape(per_example_loss)}"
        )
    if isinstance(fraction, bool) or not 0.0 < float(fraction) <= 1.0:
        raise ValueError(f"{name}: expected fraction in (0, 1], got {fraction!r}")
    n = np.shape(per_example_loss)[0]
    k = max(1, int(round(float(fraction) * n)))
    _, idx = jax.lax.top_k(jnp.asarray(per_example_loss), k)  # (k,)
    return idx.astype(jnp.int32)


# ---------------------------------------------------------------------------------------------
# Class imbalance


@dataclasses.dataclass(frozen=True)
class BalanceReport(Report):
    """What :func:`class_balance` found (verdict ``healthy`` or ``imbalanced``).

    Attributes:
      counts: ``(n_0, ..., n_{C-1})``.
      imbalance_ratio: ``max_c n_c / min_c n_c`` (infinite when a class is absent).
      flagged_classes: the under-represented classes, in class order.
    """

    counts: tuple
    imbalance_ratio: float
    flagged_classes: tuple

    PROBLEMS = ("imbalanced",)


def _check_balance_args(name: str, labels, num_classes, ratio) -> int:
    num_classes = check_positive_int(name, num_classes, "num_classes")
    if np.ndim(labels) != 1 or np.shape(labels)[0] == 0:
        raise ValueError(
            f"{name}: expected labels of shape (N,) with N >= 1, got shape {np.shape(labels)}"
        )
    check_integer_dtype(name, labels)
    check_labels_in_range(name, labels, num_classes)
    if isinstance(ratio, bool) or not 0.0 < float(ratio) <= 1.0:
        raise ValueError(f"{name}: expected ratio in (0, 1], got {ratio!r}")
    return num_classes


def class_balance(labels, num_classes: int, *, ratio: float = 0.5) -> BalanceReport:
    """Class counts and the classes that are under-represented.

    Chapter 14: class imbalance. With ``n_c`` the count of class ``c``, class ``c`` is flagged
    when ``n_c < ratio * max_c n_c``; the imbalance ratio is ``max_c n_c / min_c n_c``
    (infinite when a class is absent). The verdict is ``imbalanced`` when a class is flagged.

    Args:
      labels: integer class labels (N,), N >= 1, in ``[0, num_classes)``.
      num_classes: number of classes C.
      ratio: share of the largest class below which a class is flagged, in (0, 1].

    Returns:
      A :class:`BalanceReport`.

    Raises:
      ValueError: for labels that are not integer (N,) in range, or a bad ``ratio``.
    """
    num_classes = _check_balance_args("class_balance", labels, num_classes, ratio)
    counts = np.bincount(np.asarray(labels), minlength=num_classes)  # (C,)
    largest, smallest = int(counts.max()), int(counts.min())
    flagged = tuple(int(c) for c in np.flatnonzero(counts < ratio * largest))
    imbalance = largest / smallest if smallest > 0 else math.inf
    per_class = tuple(int(c) for c in counts)
    message = f"class counts {list(per_class)}, largest/smallest {imbalance:.2g}"
    if flagged:
        message += f"; under-represented: {list(flagged)}"
    verdict = "imbalanced" if flagged else "healthy"
    return BalanceReport(verdict, message, per_class, imbalance, flagged)


# ---------------------------------------------------------------------------------------------
# Labels that carry no signal


@dataclasses.dataclass(frozen=True)
class LabelSignalReport(Report):
    """What :func:`label_signal` found (verdict ``signal`` or ``no_signal``).

    Attributes:
      accuracy: the k-NN probe's validation accuracy.
      chance: ``p0``, the share of the most common validation class.
      threshold: the accuracy above which the labels carry signal.
      k: neighbours per vote.
      examples: validation examples scored.
    """

    accuracy: float
    chance: float
    threshold: float
    k: int
    examples: int

    OK = ("signal",)
    PROBLEMS = ("no_signal",)


def label_signal(
    train, val, *, num_classes: int, k: int = 5, max_examples: int = 4000, z: float = 3.0
) -> LabelSignalReport:
    """Whether the training labels predict the validation labels at all (a k-NN probe).

    Chapter 14: "inspect the data and labels" first. Labels shuffled against their inputs (an
    off-by-one join, a sort applied to one array only) leave a network nothing to learn, yet a
    big enough one still memorizes them. A k-nearest-neighbour vote over the raw training
    inputs needs no training: each validation example takes the majority label of its ``k``
    nearest training examples (Euclidean). With ``p0`` the share of the most common validation
    class (the best label-blind guess) and ``n`` validation examples, the labels are
    ``no_signal`` when the probe's accuracy is below ``p0 + z * sqrt(p0 (1 - p0) / n)``, i.e.
    not significantly better than guessing.

    Args:
      train: the training :class:`jaxnn.data.Dataset` (integer labels).
      val: a held-out :class:`jaxnn.data.Dataset` of the same example shape.
      num_classes: C.
      k: neighbours per vote.
      max_examples: examples used from each split (the first ones).
      z: standard errors above chance that count as signal.

    Returns:
      A :class:`LabelSignalReport`.
    """
    name = "label_signal"
    for ds in (train, val):
        check_integer_dtype(name, ds.y)
        check_labels_in_range(name, ds.y, num_classes)
    refs, queries = flat_examples(train.x, max_examples), flat_examples(val.x, max_examples)
    k = min(k, len(refs))
    idx, _ = nearest(queries, refs, k)
    votes = np.asarray(train.y[: len(refs)])[idx]  # (Q, k)
    counts = np.stack([(votes == c).sum(1) for c in range(num_classes)], axis=1)  # (Q, C)
    truth = np.asarray(val.y[: len(queries)])
    accuracy = float((counts.argmax(1) == truth).mean())
    chance = float(np.bincount(truth, minlength=num_classes).max() / len(truth))
    threshold = chance + z * math.sqrt(chance * (1 - chance) / len(truth))
    verdict = "signal" if accuracy > threshold else "no_signal"
    why = f"a {k}-NN vote over the training inputs scores {accuracy:.3f} on validation"
    why += f" (chance {chance:.3f}, significant above {threshold:.3f})"
    return LabelSignalReport(verdict, why, accuracy, chance, threshold, k, len(queries))


# ---------------------------------------------------------------------------------------------
# Per-class precision and recall


@dataclasses.dataclass(frozen=True)
class ClassReport(Report):
    """What :func:`class_report` found (verdict ``healthy`` or ``ignored_classes``).

    Attributes:
      precision, recall: per class (``nan`` for a class never predicted, resp. absent).
      support: examples per class.
      predicted: predictions per class.
      ignored: the present classes whose recall is below ``min_recall``.
    """

    precision: tuple
    recall: tuple
    support: tuple
    predicted: tuple
    ignored: tuple

    PROBLEMS = ("ignored_classes",)


def _predicted_classes(name: str, predictions, labels) -> np.ndarray:
    pred = np.asarray(predictions)
    if pred.ndim == 2:
        pred = pred.argmax(axis=1)
    if pred.shape != np.shape(labels) or pred.ndim != 1:
        raise ValueError(
            f"{name}: expected predictions (N,) or (N, C) and labels (N,), got shapes "
            f"{np.shape(predictions)} and {np.shape(labels)}"
        )
    return pred


def _class_message(ignored: tuple, recall, support) -> str:
    if ignored:
        return f"classes {list(ignored)} are (almost) never predicted"
    worst = int(np.nanargmin(recall)) if (support > 0).any() else 0
    return f"lowest recall {recall[worst]:.2f} (class {worst})"


def class_report(predictions, labels, num_classes: int, *, min_recall: float = 0.1) -> ClassReport:
    """Per-class precision, recall and support; flags the classes the model ignores.

    Chapter 14: with class imbalance a model can score well on accuracy while it never predicts
    a minority class. With ``TP_c``, ``FP_c``, ``FN_c`` counted over the examples,

        precision_c = TP_c / (TP_c + FP_c)      recall_c = TP_c / (TP_c + FN_c),

    (``nan`` for a class never predicted, resp. absent), and a class present in ``labels`` is
    *ignored* when ``recall_c < min_recall``.

    Args:
      predictions: predicted classes (N,) or logits/probabilities (N, C).
      labels: true classes (N,).
      num_classes: C.
      min_recall: recall below which a present class counts as ignored.

    Returns:
      A :class:`ClassReport`.
    """
    name = "class_report"
    pred = _predicted_classes(name, predictions, labels)
    check_integer_dtype(name, labels)
    check_labels_in_range(name, labels, num_classes)
    y = np.asarray(labels)
    tp = np.bincount(y[pred == y], minlength=num_classes).astype(np.float64)
    support = np.bincount(y, minlength=num_classes)
    predicted = np.bincount(pred, minlength=num_classes)[:num_classes]
    with np.errstate(divide="ignore", invalid="ignore"):
        precision, recall = tp / predicted, tp / support
    ignored = tuple(int(c) for c in np.flatnonzero((support > 0) & (recall < min_recall)))
    return ClassReport(
        "ignored_classes" if ignored else "healthy",
        _class_message(ignored, recall, support),
        tuple(precision.tolist()),
        tuple(recall.tolist()),
        tuple(int(s) for s in support),
        tuple(int(p) for p in predicted),
        ignored,
    )
