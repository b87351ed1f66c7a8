"""Inputs (Chapters 13 and 14): distribution shift, spurious features and leakage across splits.

:func:`feature_shift` and :func:`label_correlation` are pure ``jax.numpy`` and compose with
``jit``; :func:`distribution_shift`, :func:`spurious_feature_check` and :func:`leakage_check`
return a :class:`~jaxnn.diagnostics.report.Report`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np

from jaxnn._checks import check_integer_dtype, check_labels_in_range, check_positive_int
from jaxnn.diagnostics._common import flat_examples, nearest
from jaxnn.diagnostics.report import Report

__all__ = [
    "ShiftReport",
    "SpuriousReport",
    "LeakageReport",
    "feature_shift",
    "distribution_shift",
    "label_correlation",
    "spurious_feature_check",
    "leakage_check",
]


# ---------------------------------------------------------------------------------------------
# Distribution shift


def _features(name: str, x, what: str) -> jax.Array:
    if np.ndim(x) < 1 or np.shape(x)[0] < 2:
        raise ValueError(
            f"{name}: expected {what} of shape (N, ...) with N >= 2, got shape {np.shape(x)}"
        )
    return jnp.reshape(jnp.asarray(x, dtype=jnp.result_type(float)), (np.shape(x)[0], -1))


def feature_shift(train_x: jax.Array, other_x: jax.Array, *, std_floor: float = 0.1):
    """Per-feature standardized mean shift and log standard-deviation ratio.

    Chapter 14: distribution shift, "a mismatch between training data and real deployment data".
    With ``mu_f, s_f`` the training mean and standard deviation of feature ``f``, ``mu'_f, s'_f``
    those of the other set, and ``s_min = std_floor * std(train_x)`` (so constant features do not
    divide by zero):

        z_f = (mu'_f - mu_f) / max(s_f, s_min)
        v_f = log(max(s'_f, s_min) / max(s_f, s_min))

    An offset moves ``z``; added noise or a gain change moves ``v``.

    Args:
      train_x: training inputs (N, ...).
      other_x: inputs to compare (M, ...), the same example shape.
      std_floor: the floor ``s_min`` as a share of the overall training standard deviation.

    Returns:
      ``(z, v)``, each (F,) with F the number of features per example.

    Raises:
      ValueError: for fewer than two examples or different example shapes.
    """
    name = "feature_shift"
    a = _features(name, train_x, "train_x")  # (N, F)
    b = _features(name, other_x, "other_x")  # (M, F)
    if np.shape(train_x)[1:] != np.shape(other_x)[1:]:
        raise ValueError(
            f"{name}: expected train_x and other_x examples of the same shape, got "
            f"{np.shape(train_x)[1:]} and {np.shape(other_x)[1:]}"
        )
    floor = std_floor * jnp.std(a) + jnp.finfo(a.dtype).tiny
    s_train = jnp.maximum(jnp.std(a, axis=0), floor)  # (F,)
    s_other = jnp.maximum(jnp.std(b, axis=0), floor)  # (F,)
    z = (jnp.mean(b, axis=0) - jnp.mean(a, axis=0)) / s_train  # (F,)
    v = jnp.log(s_other / s_train)  # (F,)
    return z, v


@dataclasses.dataclass(frozen=True)
class ShiftReport(Report):
    """What :func:`distribution_shift` found (verdict ``clean`` or ``shifted``).

    Attributes:
      mean_score: ``mean_f |z_f|``.
      scale_score: ``mean_f |v_f|``.
      z: the standardized mean shift per feature (F,).
      log_std_ratio: ``v``, the log standard-deviation ratio per feature (F,).
      top_features: the 5 features of largest ``|z| + |v|``, largest first.
    """

    mean_score: float
    scale_score: float
    z: tuple
    log_std_ratio: tuple
    top_features: tuple

    OK = ("clean",)
    PROBLEMS = ("shifted",)


def distribution_shift(
    train_x,
    other_x,
    *,
    mean_threshold: float = 0.25,
    scale_threshold: float = 0.2,
    std_floor: float = 0.1,
) -> ShiftReport:
    """Flag a set of inputs whose feature statistics differ from the training inputs.

    Chapter 14: distribution shift. From :func:`feature_shift`'s ``z`` and ``v`` the two scores
    are the mean absolute shifts over the F features,

        mean_score = mean_f |z_f|        scale_score = mean_f |v_f|,

    and the set is ``shifted`` when ``mean_score > mean_threshold`` or
    ``scale_score > scale_threshold`` (``clean`` otherwise). A held-out split of the same
    distribution scores near ``1 / sqrt(M)``, sampling noise only.

    Args:
      train_x: training inputs (N, ...).
      other_x: inputs to compare (M, ...), the same example shape.
      mean_threshold: mean |standardized mean shift| above which the set is flagged.
      scale_threshold: mean |log std ratio| above which the set is flagged.
      std_floor: see :func:`feature_shift`.

    Returns:
      A :class:`ShiftReport`.

    Raises:
      ValueError: for fewer than two examples or different example shapes.
    """
    z, v = feature_shift(train_x, other_x, std_floor=std_floor)
    z, v = np.asarray(z), np.asarray(v)
    mean_score, scale_score = float(np.abs(z).mean()), float(np.abs(v).mean())
    shifted = mean_score > mean_threshold or scale_score > scale_threshold
    message = f"mean |standardized mean shift| {mean_score:.3f} (flagged above {mean_threshold}),"
    message += f" mean |log std ratio| {scale_score:.3f} (flagged above {scale_threshold})"
    return ShiftReport(
        "shifted" if shifted else "clean",
        message,
        mean_score,
        scale_score,
        tuple(z.tolist()),
        tuple(v.tolist()),
        tuple(int(i) for i in np.argsort(-(np.abs(z) + np.abs(v)))[:5]),
    )


# ---------------------------------------------------------------------------------------------
# Spurious features


def _check_xy(name: str, x, y, what: str) -> None:
    if np.ndim(x) < 1 or np.ndim(y) != 1 or np.shape(x)[0] != np.shape(y)[0]:
        raise ValueError(
            f"{name}: expected {what} inputs (N, ...) and labels (N,) of the same length, got "
            f"shapes {np.shape(x)} and {np.shape(y)}"
        )
    if np.shape(y)[0] < 2:
        raise ValueError(f"{name}: expected at least 2 {what} examples, got {np.shape(y)[0]}")
    check_integer_dtype(name, y)


def label_correlation(x: jax.Array, labels: jax.Array, *, num_classes: int) -> jax.Array:
    """Pearson correlation of every feature with every one-vs-rest class indicator.

    Chapter 14: a spurious correlation is "a misleading pattern that predicts labels in
    training". With ``x_f`` feature ``f`` (inputs flattened to (N, F)) and ``e_c = 1[y = c]``:

        r[f, c] = cov(x_f, e_c) / (std(x_f) std(e_c))

    (0 where either standard deviation is 0).

    Args:
      x: inputs (N, ...), N >= 2.
      labels: integer labels (N,).
      num_classes: C.

    Returns:
      correlations (F, C).

    Raises:
      ValueError: for mismatched lengths, fewer than two examples or non-integer labels.
    """
    name = "label_correlation"
    num_classes = check_positive_int(name, num_classes, "num_classes")
    _check_xy(name, x, labels, "the")
    check_labels_in_range(name, labels, num_classes)
    a = _features(name, x, "x")  # (N, F)
    e = jax.nn.one_hot(labels, num_classes, dtype=a.dtype)  # (N, C)
    a = a - a.mean(axis=0)
    e = e - e.mean(axis=0)
    cov = a.T @ e / a.shape[0]  # (F, C)
    scale = jnp.outer(jnp.std(a, axis=0), jnp.std(e, axis=0))  # (F, C)
    safe = jnp.where(scale > 0, scale, 1.0)
    return jnp.where(scale > 0, cov / safe, 0.0)


@dataclasses.dataclass(frozen=True)
class SpuriousReport(Report):
    """What :func:`spurious_feature_check` found (verdict ``clean`` or ``spurious``).

    Attributes:
      flagged_features: the features whose gap exceeds ``min_gap``, largest gap first.
      gap: ``gap_f`` per candidate feature (F,).
      train_correlation: ``|r_train[f, c_f]|`` (F,).
      test_correlation: ``|r_test[f, c_f]|`` (F,).
      tracked_class: ``c_f`` (F,).
      top_feature: the feature of largest gap.
    """

    flagged_features: tuple
    gap: tuple
    train_correlation: tuple
    test_correlation: tuple
    tracked_class: tuple
    top_feature: int

    OK = ("clean",)
    PROBLEMS = ("spurious",)


def _check_spurious_args(name, train_x, train_y, test_x, test_y, num_classes) -> None:
    _check_xy(name, train_x, train_y, "train")
    _check_xy(name, test_x, test_y, "test")
    check_labels_in_range(name, train_y, num_classes)
    check_labels_in_range(name, test_y, num_classes)
    if np.shape(train_x)[1:] != np.shape(test_x)[1:]:
        raise ValueError(
            f"{name}: expected train and test examples of the same shape, got "
            f"{np.shape(train_x)[1:]} and {np.shape(test_x)[1:]}"
        )


def _project(name: str, directions, *inputs) -> list:
    """Each ``x`` of ``inputs`` (N, ...) projected on the directions (K, ...): (N, K)."""
    shape = np.shape(inputs[0])[1:]
    if np.shape(directions)[1:] != shape or np.shape(directions)[0] == 0:
        raise ValueError(
            f"{name}: expected directions (K, ...) with examples of shape "
            f"{shape}, got shape {np.shape(directions)}"
        )
    d = np.reshape(np.asarray(directions, np.float64), (np.shape(directions)[0], -1))
    return [np.reshape(np.asarray(x, np.float64), (np.shape(x)[0], -1)) @ d.T for x in inputs]


def spurious_feature_check(
    train_x,
    train_y,
    test_x,
    test_y,
    *,
    num_classes: int,
    directions=None,
    min_gap: float = 0.3,
) -> SpuriousReport:
    """Flag features that predict the label in training much better than in test.

    Chapter 14: spurious correlation, a shortcut that "predicts labels in training but is not
    causally reliable". Each candidate feature ``f`` is a raw input feature, or, with
    ``directions`` (K, ...), the projection ``<x, d_k>`` of each example on direction ``k`` (for
    a suspected pattern). With ``r`` from :func:`label_correlation` and ``c_f`` the class that
    feature ``f`` tracks best in training, ``c_f = argmax_c |r_train[f, c]|``:

        gap_f = |r_train[f, c_f]| - |r_test[f, c_f]|

    and feature ``f`` is flagged when ``gap_f > min_gap`` (verdict ``spurious``; ``clean`` when
    none is). A genuine feature keeps its correlation on held-out data of the same distribution;
    only sampling noise, of order ``1 / sqrt(N_test)``, separates the two.

    Args:
      train_x: training inputs (N, ...); train_y: their labels (N,).
      test_x: validation or test inputs (M, ...), the same example shape; test_y: labels (M,).
      num_classes: C.
      directions: optional candidate directions (K, ...) of the example shape.
      min_gap: correlation gap above which a feature is flagged.

    Returns:
      A :class:`SpuriousReport`, with F the number of candidate features.

    Raises:
      ValueError: for mismatched lengths or example shapes, or directions of another shape.
    """
    name = "spurious_feature_check"
    _check_spurious_args(name, train_x, train_y, test_x, test_y, num_classes)
    if directions is not None:
        train_x, test_x = _project(name, directions, train_x, test_x)  # (N, K), (M, K)
    r_train = np.asarray(label_correlation(train_x, train_y, num_classes=num_classes))  # (F, C)
    r_test = np.asarray(label_correlation(test_x, test_y, num_classes=num_classes))  # (F, C)
    tracked = np.argmax(np.abs(r_train), axis=1)  # (F,)
    rows = np.arange(len(tracked))
    train_corr, test_corr = np.abs(r_train[rows, tracked]), np.abs(r_test[rows, tracked])
    gap = train_corr - test_corr  # (F,)
    order = np.argsort(-gap)
    flagged = tuple(int(f) for f in order if gap[f] > min_gap)
    top = int(order[0])
    message = f"{len(flagged)} of {len(gap)} features correlate with the label over {min_gap}"
    message += f" more in training than in test; largest gap {gap[top]:.3f} (feature {top})"
    return SpuriousReport(
        "spurious" if flagged else "clean",
        message,
        flagged,
        tuple(gap.tolist()),
        tuple(train_corr.tolist()),
        tuple(test_corr.tolist()),
        tuple(int(c) for c in tracked),
        top,
    )


# ---------------------------------------------------------------------------------------------
# Leakage between splits


@dataclasses.dataclass(frozen=True)
class LeakageReport(Report):
    """What :func:`leakage_check` found (verdict ``clean`` or ``leakage``).

    Attributes:
      pairs: ``{"train/val": {"exact": n, "near": n, "fraction": f, "examples": [...]}, ...}``:
        for each later split, how many of its examples have an exact or a near duplicate in an
        earlier split, that share of the later split, and the first indices (into it).
      max_fraction: the duplicated share above which a pair counts as leakage.
    """

    pairs: dict
    max_fraction: float

    OK = ("clean",)
    PROBLEMS = ("leakage",)


def _split_arrays(splits) -> dict:
    if isinstance(splits, Mapping):
        return {k: (v.x if hasattr(v, "x") else v) for k, v in splits.items()}
    test = splits.test.unseal("leakage_check: compare inputs only, nothing is scored")
    return {"train": splits.train.x, "val": splits.val.x, "test": test.x}


def _duplicates(ref: np.ndarray, other: np.ndarray, near: float) -> tuple:
    seen = {row.tobytes() for row in ref}
    exact = np.array([row.tobytes() in seen for row in other])
    _, d2 = nearest(other, ref, 1)
    dist = np.sqrt(d2[:, 0])
    scale = float(np.median(dist[~exact])) if (~exact).any() else 0.0
    close = (dist <= near * scale) & ~exact
    return exact, close


def _pair(ref: np.ndarray, other: np.ndarray, near: float) -> dict:
    exact, close = _duplicates(ref, other, near)
    hit = exact | close
    return {
        "exact": int(exact.sum()),
        "near": int(close.sum()),
        "fraction": float(hit.mean()),
        "examples": [int(i) for i in np.flatnonzero(hit)[:10]],
    }


def _leakage_message(pairs: dict) -> str:
    worst = max(pairs, key=lambda k: pairs[k]["fraction"], default=None)
    if worst is None or pairs[worst]["fraction"] == 0:
        return "no duplicates across splits"
    p = pairs[worst]
    why = f"{worst}: {p['exact']} exact and {p['near']} near duplicates "
    return why + f"({p['fraction']:.1%} of {worst.split('/')[1]})"


def leakage_check(
    splits, *, near: float = 0.05, max_fraction: float = 0.002, max_examples: int = 20000
) -> LeakageReport:
    """Exact and near duplicates across the train, validation and test splits.

    Chapter 13 and 14: a validation or test example that also sits in the training set is
    scored after the model has seen it, so the held-out estimate is optimistic. Each later
    split is compared with each earlier one: an *exact* duplicate has byte-identical inputs; a
    *near* duplicate lies within ``near`` times the median nearest-neighbour distance between
    the two splits (a resized, re-encoded or lightly noised copy). The verdict is ``leakage``
    when some pair has more than a share ``max_fraction`` of the later split duplicated.

    Args:
      splits: :class:`jaxnn.data.Splits` (its test split's inputs are compared, and the unseal
        is recorded as such) or a mapping ``{name: Dataset or array}`` in split order.
      near: near-duplicate radius as a share of the median nearest-neighbour distance.
      max_fraction: duplicated share of a split that counts as leakage.
      max_examples: examples compared per split (the first ones).

    Returns:
      A :class:`LeakageReport`.
    """
    arrays = {
        k: flat_examples(np.ascontiguousarray(v), max_examples)
        for k, v in _split_arrays(splits).items()
    }
    names = list(arrays)
    pairs = {
        f"{earlier}/{later}": _pair(arrays[earlier], arrays[later], near)
        for j, later in enumerate(names)
        for earlier in names[:j]
    }
    worst = max((p["fraction"] for p in pairs.values()), default=0.0)
    verdict = "leakage" if worst > max_fraction else "clean"
    return LeakageReport(verdict, _leakage_message(pairs), pairs, max_fraction)
