"""Fault injection — Chapter 14: the dataset problems behind common failure modes.

Each function takes clean data and returns ``(corrupted, record)``: the corrupted
:class:`~jaxnn.data.Dataset` (or datasets) and a plain ``dict`` that states exactly what changed
(which indices were flipped, which examples dropped, what was added), so an experiment can show a
failure and a diagnostic can be checked against the truth. Everything is deterministic from
``seed`` and leaves the input datasets untouched.

- :func:`label_noise`: mislabeled examples.
- :func:`class_imbalance`: under-represented classes.
- :func:`distribution_shift`: test inputs that differ from training inputs.
- :func:`spurious_feature`: a shortcut that predicts the label in training but not in test.
"""

from __future__ import annotations

import numpy as np

from jaxnn._checks import check_positive_int
from jaxnn.data.containers import Dataset

__all__ = ["label_noise", "class_imbalance", "distribution_shift", "spurious_feature", "SHIFTS"]

SHIFTS = ("gaussian_noise", "scale", "offset")


def _rng(name: str, seed, salt: int) -> np.random.Generator:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"{name}: expected seed to be a non-negative integer, got {seed!r}")
    return np.random.default_rng(np.random.SeedSequence([int(seed), salt]))


def _check_dataset(name: str, ds) -> Dataset:
    if not isinstance(ds, Dataset):
        raise ValueError(f"{name}: expected a Dataset, got {type(ds).__name__}")
    return ds


def _check_labels(name: str, ds: Dataset, num_classes: int | None = None) -> None:
    if ds.y.ndim != 1 or not np.issubdtype(ds.y.dtype, np.integer):
        raise ValueError(
            f"{name}: expected integer class labels of shape (N,), got {ds.y.dtype} {ds.y.shape}"
        )
    if num_classes is not None and (ds.y.min() < 0 or ds.y.max() >= num_classes):
        raise ValueError(
            f"{name}: expected labels in [0, {num_classes}), got values in "
            f"[{ds.y.min()}, {ds.y.max()}]"
        )


def _check_float_x(name: str, ds: Dataset) -> None:
    if not np.issubdtype(ds.x.dtype, np.floating):
        raise ValueError(f"{name}: expected floating-point inputs, got dtype {ds.x.dtype}")


def label_noise(
    ds: Dataset, fraction: float, *, num_classes: int, seed: int
) -> tuple[Dataset, dict]:
    """Replace the labels of ``round(fraction * N)`` random examples by a different class.

    Chapter 14: mislabeled examples. Each chosen label ``y`` becomes a class drawn uniformly from
    the other ``num_classes - 1`` classes, so exactly the recorded indices are wrong.

    Returns:
      ``(noisy dataset, record)`` with record keys ``kind``, ``fraction``, ``indices`` (sorted),
      ``old_labels`` and ``new_labels`` (aligned with ``indices``).
    """
    name = "label_noise"
    _check_dataset(name, ds)
    num_classes = check_positive_int(name, num_classes, "num_classes")
    if num_classes < 2:
        raise ValueError(f"{name}: expected num_classes >= 2, got {num_classes}")
    _check_labels(name, ds, num_classes)
    if not 0.0 <= float(fraction) <= 1.0:
        raise ValueError(f"{name}: expected fraction in [0, 1], got {fraction!r}")
    rng = _rng(name, seed, 11)
    n = len(ds)
    idx = np.sort(rng.choice(n, size=int(round(fraction * n)), replace=False))
    old = ds.y[idx]
    new = (old + rng.integers(1, num_classes, size=len(idx))) % num_classes  # never the old class
    y = ds.y.copy()
    y[idx] = new.astype(ds.y.dtype)
    record = {
        "kind": "label_noise",
        "fraction": float(fraction),
        "indices": idx,
        "old_labels": old,
        "new_labels": y[idx],
    }
    return Dataset(ds.x, y), record


def class_imbalance(
    ds: Dataset, ratio: float, *, seed: int, minority_classes=None
) -> tuple[Dataset, dict]:
    """Keep only a share ``ratio`` of the examples of the minority classes.

    Chapter 14: class imbalance. Each minority class ``c`` keeps ``max(1, round(ratio * N_c))``
    randomly chosen examples; other classes are kept whole. The order of the kept examples is
    the original order.

    Args:
      ds: labelled dataset (labels (N,)).
      ratio: share of each minority class to keep, in (0, 1].
      seed: seed of the choice.
      minority_classes: the classes to shrink; by default the upper half of the classes present
        (e.g. 5..9 for digits).

    Returns:
      ``(imbalanced dataset, record)`` with record keys ``kind``, ``ratio``, ``minority_classes``,
      ``kept_indices`` and ``dropped_indices`` (into ``ds``), ``counts_before`` and
      ``counts_after`` (dict class -> count).
    """
    name = "class_imbalance"
    _check_dataset(name, ds)
    _check_labels(name, ds)
    if not 0.0 < float(ratio) <= 1.0:
        raise ValueError(f"{name}: expected ratio in (0, 1], got {ratio!r}")
    classes = np.unique(ds.y)
    if minority_classes is None:
        minority = classes[len(classes) // 2 :]
    else:
        minority = np.unique(np.asarray(minority_classes, dtype=np.int64).ravel())
        missing = sorted(set(minority.tolist()) - set(classes.tolist()))
        if missing:
            raise ValueError(
                f"{name}: expected minority_classes among the labels {classes.tolist()}, "
                f"got absent classes {missing}"
            )
    rng = _rng(name, seed, 12)
    drop = []
    for c in minority:
        members = np.flatnonzero(ds.y == c)
        keep = max(1, int(round(ratio * len(members))))
        drop.append(rng.permutation(members)[keep:])
    dropped = np.sort(np.concatenate(drop)) if drop else np.zeros(0, np.int64)
    mask = np.ones(len(ds), bool)
    mask[dropped] = False
    kept = np.flatnonzero(mask)
    out = ds.take(kept)

    def counts(y):
        return {int(c): int((y == c).sum()) for c in classes}

    record = {
        "kind": "class_imbalance",
        "ratio": float(ratio),
        "minority_classes": tuple(int(c) for c in minority),
        "kept_indices": kept,
        "dropped_indices": dropped,
        "counts_before": counts(ds.y),
        "counts_after": counts(out.y),
    }
    return out, record


def distribution_shift(
    ds: Dataset, *, kind: str, severity: float, seed: int
) -> tuple[Dataset, dict]:
    """Shift the input distribution, with ``sigma`` the standard deviation of ``ds.x``.

    Chapter 14: distribution shift, a mismatch between training and deployment inputs.

    - ``"gaussian_noise"``: ``x + severity * sigma * eps``, ``eps ~ N(0, I)`` (sensor noise);
    - ``"scale"``: ``x * (1 + severity)`` (a gain change);
    - ``"offset"``: ``x + severity * sigma`` (a brightness or calibration offset).

    Labels are unchanged.

    Returns:
      ``(shifted dataset, record)`` with record keys ``kind``, ``severity``, ``sigma`` and
      ``mean_abs_change`` (the mean of ``|x' - x|``).
    """
    name = "distribution_shift"
    _check_dataset(name, ds)
    _check_float_x(name, ds)
    if kind not in SHIFTS:
        raise ValueError(f"{name}: expected kind in {SHIFTS}, got {kind!r}")
    if not np.isfinite(severity) or float(severity) < 0:
        raise ValueError(f"{name}: expected a finite severity >= 0, got {severity!r}")
    rng = _rng(name, seed, 13)
    x0 = np.asarray(ds.x)  # a lazy split (a pack) is read whole: shifts are for small sets
    sigma = float(x0.std())
    if kind == "gaussian_noise":
        x = x0 + severity * sigma * rng.standard_normal(x0.shape)
    elif kind == "scale":
        x = x0 * (1.0 + severity)
    else:
        x = x0 + severity * sigma
    x = x.astype(x0.dtype)
    record = {
        "kind": kind,
        "severity": float(severity),
        "sigma": sigma,
        "mean_abs_change": float(np.abs(x - ds.x).mean()),
    }
    return Dataset(x, ds.y), record


def spurious_feature(
    train: Dataset, test: Dataset, *, strength: float, seed: int, amplitude: float = 1.0
) -> tuple[tuple[Dataset, Dataset], dict]:
    """Plant a shortcut: a class pattern that agrees with the label in train, not in test.

    Chapter 14: spurious correlation. Each class ``c`` gets a fixed random pattern ``p_c`` of the
    shape of one example (unit RMS). A training example with label ``y`` receives
    ``x + a * sigma * p_y`` with probability ``strength`` and the pattern of a random other class
    otherwise; every test example receives the pattern of a uniformly random class, independent of
    its label. A model that learns the pattern instead of the signal looks good in training and
    fails in test.

    Args:
      train: labelled training data (labels (N,)).
      test: labelled test data with the same example shape.
      strength: probability that a training example's pattern matches its label, in [0, 1].
      seed: seed of the patterns and of the assignments.
      amplitude: pattern size ``a`` in units of the training input standard deviation ``sigma``.

    Returns:
      ``((train', test'), record)`` with record keys ``kind``, ``strength``, ``amplitude``,
      ``patterns`` (C, ...), ``train_pattern_class`` (N_train,), ``test_pattern_class``
      (N_test,), ``train_agreement`` and ``test_agreement`` (share of examples whose pattern
      class equals the label).
    """
    name = "spurious_feature"
    for ds in (train, test):
        _check_dataset(name, ds)
        _check_labels(name, ds)
        _check_float_x(name, ds)
    if train.x.shape[1:] != test.x.shape[1:]:
        raise ValueError(
            f"{name}: expected train and test examples of the same shape, got "
            f"{train.x.shape[1:]} and {test.x.shape[1:]}"
        )
    if not 0.0 <= float(strength) <= 1.0:
        raise ValueError(f"{name}: expected strength in [0, 1], got {strength!r}")
    num_classes = int(max(train.y.max(), test.y.max())) + 1
    if num_classes < 2:
        raise ValueError(f"{name}: expected at least 2 classes, got labels {np.unique(train.y)}")
    rng = _rng(name, seed, 14)
    patterns = rng.standard_normal((num_classes, *train.x.shape[1:]))  # (C, ...)
    axes = tuple(range(1, patterns.ndim))
    patterns /= np.sqrt((patterns**2).mean(axis=axes, keepdims=True))  # unit RMS per class
    agree = rng.random(len(train)) < strength  # (N_train,)
    other = (train.y + rng.integers(1, num_classes, len(train))) % num_classes
    train_cls = np.where(agree, train.y, other)
    test_cls = rng.integers(0, num_classes, len(test))
    x_train, x_test = np.asarray(train.x), np.asarray(test.x)  # read whole, as above
    scale = amplitude * float(x_train.std())
    out_train = Dataset((x_train + scale * patterns[train_cls]).astype(x_train.dtype), train.y)
    out_test = Dataset((x_test + scale * patterns[test_cls]).astype(x_test.dtype), test.y)
    record = {
        "kind": "spurious_feature",
        "strength": float(strength),
        "amplitude": float(amplitude),
        "patterns": patterns.astype(train.x.dtype),
        "train_pattern_class": train_cls,
        "test_pattern_class": test_cls,
        "train_agreement": float((train_cls == train.y).mean()),
        "test_agreement": float((test_cls == test.y).mean()),
    }
    return (out_train, out_test), record
