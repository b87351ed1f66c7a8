"""Diagnostics — Chapter 14: the common failure modes, as functions that detect them.

"Neural networks fail in predictable ways that are often diagnosable." Each function here looks at
what a run leaves behind (per-epoch history, gradients, per-example losses, the data itself) and
returns a verdict with the numbers behind it. Every threshold is a keyword argument.

- :func:`fit_diagnosis`: underfitting, overfitting or healthy, from ``fit``'s history.
- :func:`layer_grad_norms`, :func:`gradient_health`: vanishing and exploding gradients.
- :func:`suspicious_labels`: the examples a trained model finds hardest (mislabeled candidates).
- :func:`class_balance`: under-represented classes.
- :func:`feature_shift`, :func:`distribution_shift`: inputs that differ from the training inputs.
- :func:`label_correlation`, :func:`spurious_feature_check`: a feature that predicts the label in
  training much better than in test (a shortcut).

The array-valued functions (:func:`layer_grad_norms`, :func:`suspicious_labels`,
:func:`feature_shift`, :func:`label_correlation`) are pure ``jax.numpy`` and compose with ``jit``;
the verdict functions read concrete values and return plain Python numbers and flags.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxnn._checks import check_integer_dtype, check_labels_in_range, check_positive_int

__all__ = [
    "fit_diagnosis",
    "layer_grad_norms",
    "gradient_health",
    "suspicious_labels",
    "class_balance",
    "feature_shift",
    "distribution_shift",
    "label_correlation",
    "spurious_feature_check",
]


# ---------------------------------------------------------------------------------------------
# Underfitting and overfitting


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


def fit_diagnosis(
    history: Sequence[Mapping],
    *,
    min_train_accuracy: float = 0.6,
    min_loss_drop: float = 0.1,
    overfit_epochs: int = 3,
    min_val_rise: float = 0.0,
    max_accuracy_gap: float = 0.15,
) -> dict:
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
      ``{"verdict": "underfitting" | "overfitting" | "healthy", "reasons": [...], ...}`` with
      the numbers behind it: ``epochs``, ``loss_drop``, ``final_train_accuracy``,
      ``final_val_accuracy``, ``accuracy_gap`` (``None`` without accuracies), ``best_val_epoch``
      (1-based), ``epochs_since_best_val``, ``val_loss_rise`` and ``train_loss_fall_since_best``.

    Raises:
      ValueError: with fewer than two records or a record missing ``train_loss``/``val_loss``.
    """
    name = "fit_diagnosis"
    history = list(history)
    if len(history) < 2:
        raise ValueError(f"{name}: expected a history of at least 2 epochs, got {len(history)}")
    train_loss = _column(name, history, "train_loss")
    val_loss = _column(name, history, "val_loss")
    train_acc = _column(name, history, "train_accuracy", required=False)
    val_acc = _column(name, history, "val_accuracy", required=False)

    best = int(np.argmin(val_loss))  # 0-based
    loss_drop = float(1.0 - train_loss[-1] / train_loss[0]) if train_loss[0] > 0 else 0.0
    final_train = None if train_acc is None else float(train_acc[-1])
    final_val = None if val_acc is None else float(val_acc[-1])
    gap = None if final_train is None or final_val is None else final_train - final_val
    numbers = {
        "epochs": len(history),
        "loss_drop": loss_drop,
        "final_train_accuracy": final_train,
        "final_val_accuracy": final_val,
        "accuracy_gap": gap,
        "best_val_epoch": best + 1,
        "epochs_since_best_val": len(history) - 1 - best,
        "val_loss_rise": float(val_loss[-1] - val_loss[best]),
        "train_loss_fall_since_best": float(train_loss[best] - train_loss[-1]),
    }

    under = []
    if final_train is not None and final_train < min_train_accuracy:
        under.append(f"final train accuracy {final_train:.3f} < {min_train_accuracy}")
    if loss_drop < min_loss_drop:
        under.append(f"train loss fell by {loss_drop:.3f} of its first value < {min_loss_drop}")
    if under:
        return {"verdict": "underfitting", "reasons": under, **numbers}

    over = []
    if (
        numbers["epochs_since_best_val"] >= overfit_epochs
        and numbers["train_loss_fall_since_best"] > 0
        and numbers["val_loss_rise"] > min_val_rise
    ):
        over.append(
            f"val loss rose {numbers['val_loss_rise']:.3f} over the "
            f"{numbers['epochs_since_best_val']} epochs since its best while train loss fell"
        )
    if gap is not None and gap > max_accuracy_gap:
        over.append(f"train - val accuracy gap {gap:.3f} > {max_accuracy_gap}")
    verdict = "overfitting" if over else "healthy"
    return {"verdict": verdict, "reasons": over, **numbers}


# ---------------------------------------------------------------------------------------------
# Vanishing and exploding gradients


def _natural_key(text: str):
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


def layer_grad_norms(grads) -> dict[str, jax.Array]:
    """Euclidean norm of the gradient of each layer, keyed by the layer's path.

    Chapter 14: vanishing or exploding gradients show as layer norms that shrink or grow by
    orders of magnitude from the output layer back to the input layer.

    A layer is a leaf's path without its last key (``['dense_0']['w']`` and ``['dense_0']['b']``
    form layer ``['dense_0']``); its norm is ``sqrt(sum_leaves sum_i g_i^2)``. Layers are listed
    in natural order of their paths (``dense_2`` before ``dense_10``), which is input to output
    for the jaxnn models.

    Args:
      grads: a gradient pytree (the params' structure), at least one leaf.

    Returns:
      ``{path: norm}``, each norm a float scalar array (under ``jit`` the returned dict comes
      back with its keys in plain sorted order, as JAX flattens dicts).

    Raises:
      ValueError: if ``grads`` has no leaves.
    """
    leaves = jax.tree_util.tree_flatten_with_path(grads)[0]
    if not leaves:
        raise ValueError("layer_grad_norms: expected a gradient pytree with leaves, got none")
    squares: dict[str, jax.Array] = {}
    for path, leaf in leaves:
        layer = jax.tree_util.keystr(path[:-1] if len(path) > 1 else path)
        sq = jnp.sum(jnp.square(jnp.asarray(leaf, dtype=jnp.result_type(float))))
        squares[layer] = squares[layer] + sq if layer in squares else sq
    return {k: jnp.sqrt(squares[k]) for k in sorted(squares, key=_natural_key)}


def _is_scalar(v) -> bool:
    return isinstance(v, (int, float, np.number)) or (hasattr(v, "shape") and v.shape == ())


def _norms_from(name: str, grads) -> dict[str, float]:
    if isinstance(grads, Mapping) and grads and all(_is_scalar(v) for v in grads.values()):
        names = sorted(grads, key=lambda k: _natural_key(str(k)))  # jit returns dicts sorted
        norms = {str(k): float(grads[k]) for k in names}  # already {layer: norm}
    elif isinstance(grads, (list, tuple, np.ndarray)) and all(_is_scalar(v) for v in grads):
        norms = {str(i): float(v) for i, v in enumerate(grads)}  # norms, input to output
    else:
        norms = {k: float(v) for k, v in layer_grad_norms(grads).items()}
    if len(norms) < 1:
        raise ValueError(f"{name}: expected at least one layer norm, got none")
    if any(not (v >= 0) and not math.isnan(v) for v in norms.values()):
        raise ValueError(f"{name}: expected non-negative norms, got {norms}")
    return norms


def gradient_health(
    grads,
    *,
    vanishing_ratio: float = 1e-3,
    min_norm: float = 1e-8,
    max_norm: float = 1e3,
    max_growth: float = 1e3,
) -> dict:
    """Flag vanishing or exploding gradients from per-layer gradient norms.

    Chapter 14: "Vanishing or exploding gradients make deep or recurrent models train slowly or
    unstably." With ``n_1 .. n_L`` the layer norms from input to output and
    ``r = n_1 / n_L`` (how much the gradient changed on its way back through the network):

    - vanishing: ``r < vanishing_ratio`` or some ``n_l < min_norm``;
    - exploding: some ``n_l > max_norm`` or not finite, or ``r > max_growth``.

    Args:
      grads: a gradient pytree (norms from :func:`layer_grad_norms`), or the per-layer norms
        themselves: ``{layer: norm}`` (layers in natural order of their names, ``dense_2``
        before ``dense_10``) or a sequence of numbers, input to output.
      vanishing_ratio: first-to-last norm ratio below which gradients vanish.
      min_norm: absolute norm below which a layer's gradient has vanished.
      max_norm: absolute norm above which a layer's gradient has exploded.
      max_growth: first-to-last norm ratio above which gradients explode.

    Returns:
      ``{"vanishing": bool, "exploding": bool, "healthy": bool, "ratio": r,
      "min_norm": min_l n_l, "max_norm": max_l n_l, "norms": {layer: n_l}}``.

    Raises:
      ValueError: if there are no layers or a norm is negative.
    """
    norms = _norms_from("gradient_health", grads)
    values = np.asarray(list(norms.values()), dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = float(values[0] / values[-1]) if values[-1] > 0 else math.inf
    finite = bool(np.isfinite(values).all())
    vanishing = finite and (ratio < vanishing_ratio or bool((values < min_norm).any()))
    exploding = (not finite) or bool((values > max_norm).any()) or ratio > max_growth
    return {
        "vanishing": bool(vanishing),
        "exploding": bool(exploding),
        "healthy": not (vanishing or exploding),
        "ratio": ratio,
        "min_norm": float(values.min()),
        "max_norm": float(values.max()),
        "norms": norms,
    }


# ---------------------------------------------------------------------------------------------
# Mislabeled examples and class imbalance


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


def class_balance(labels, num_classes: int, *, ratio: float = 0.5) -> dict:
    """Class counts and the classes that are under-represented.

    Chapter 14: class imbalance. With ``n_c`` the count of class ``c``, class ``c`` is flagged
    when ``n_c < ratio * max_c n_c``; the imbalance ratio is ``max_c n_c / min_c n_c``
    (infinite when a class is absent).

    Args:
      labels: integer class labels (N,), N >= 1, in ``[0, num_classes)``.
      num_classes: number of classes C.
      ratio: share of the largest class below which a class is flagged, in (0, 1].

    Returns:
      ``{"counts": [n_0, ..., n_{C-1}], "imbalance_ratio": float, "flagged": [classes],
      "imbalanced": bool}``.

    Raises:
      ValueError: for labels that are not integer (N,) in range, or a bad ``ratio``.
    """
    name = "class_balance"
    num_classes = check_positive_int(name, num_classes, "num_classes")
    if np.ndim(labels) != 1 or np.shape(labels)[0] == 0:
        raise ValueError(
            f"{name}: expected labels of shape (N,) with N >= 1, got shape {np.shape(labels)}"
        )
    check_integer_dtype(name, labels)
    check_labels_in_range(name, labels, num_classes)
    if isinstance(ratio, bool) or not 0.0 < float(ratio) <= 1.0:
        raise ValueError(f"{name}: expected ratio in (0, 1], got {ratio!r}")
    counts = np.bincount(np.asarray(labels), minlength=num_classes)  # (C,)
    largest, smallest = int(counts.max()), int(counts.min())
    flagged = [int(c) for c in np.flatnonzero(counts < ratio * largest)]
    return {
        "counts": [int(c) for c in counts],
        "imbalance_ratio": largest / smallest if smallest > 0 else math.inf,
        "flagged": flagged,
        "imbalanced": bool(flagged),
    }


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


def distribution_shift(
    train_x,
    other_x,
    *,
    mean_threshold: float = 0.25,
    scale_threshold: float = 0.2,
    std_floor: float = 0.1,
) -> dict:
    """Flag a set of inputs whose feature statistics differ from the training inputs.

    Chapter 14: distribution shift. From :func:`feature_shift`'s ``z`` and ``v`` the two scores
    are the mean absolute shifts over the F features,

        mean_score = mean_f |z_f|        scale_score = mean_f |v_f|,

    and the set is flagged when ``mean_score > mean_threshold`` or
    ``scale_score > scale_threshold``. A held-out split of the same distribution scores near
    ``1 / sqrt(M)``, sampling noise only.

    Args:
      train_x: training inputs (N, ...).
      other_x: inputs to compare (M, ...), the same example shape.
      mean_threshold: mean |standardized mean shift| above which the set is flagged.
      scale_threshold: mean |log std ratio| above which the set is flagged.
      std_floor: see :func:`feature_shift`.

    Returns:
      ``{"shifted": bool, "mean_score": float, "scale_score": float, "z": (F,) array,
      "log_std_ratio": (F,) array, "top_features": indices of the 5 largest |z| + |v|}``.

    Raises:
      ValueError: for fewer than two examples or different example shapes.
    """
    z, v = feature_shift(train_x, other_x, std_floor=std_floor)
    z, v = np.asarray(z), np.asarray(v)
    mean_score, scale_score = float(np.abs(z).mean()), float(np.abs(v).mean())
    return {
        "shifted": mean_score > mean_threshold or scale_score > scale_threshold,
        "mean_score": mean_score,
        "scale_score": scale_score,
        "z": z,
        "log_std_ratio": v,
        "top_features": [int(i) for i in np.argsort(-(np.abs(z) + np.abs(v)))[:5]],
    }


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


def spurious_feature_check(
    train_x,
    train_y,
    test_x,
    test_y,
    *,
    num_classes: int,
    directions=None,
    min_gap: float = 0.3,
) -> dict:
    """Flag features that predict the label in training much better than in test.

    Chapter 14: spurious correlation, a shortcut that "predicts labels in training but is not
    causally reliable". Each candidate feature ``f`` is a raw input feature, or, with
    ``directions`` (K, ...), the projection ``<x, d_k>`` of each example on direction ``k`` (for
    a suspected pattern). With ``r`` from :func:`label_correlation` and ``c_f`` the class that
    feature ``f`` tracks best in training, ``c_f = argmax_c |r_train[f, c]|``:

        gap_f = |r_train[f, c_f]| - |r_test[f, c_f]|

    and feature ``f`` is flagged when ``gap_f > min_gap``. A genuine feature keeps its
    correlation on held-out data of the same distribution; only sampling noise, of order
    ``1 / sqrt(N_test)``, separates the two.

    Args:
      train_x: training inputs (N, ...); train_y: their labels (N,).
      test_x: validation or test inputs (M, ...), the same example shape; test_y: labels (M,).
      num_classes: C.
      directions: optional candidate directions (K, ...) of the example shape.
      min_gap: correlation gap above which a feature is flagged.

    Returns:
      ``{"spurious": bool, "flagged": [features, largest gap first], "gap": (F,) array,
      "train_correlation": (F,), "test_correlation": (F,), "tracked_class": (F,),
      "top_feature": int}`` with F the number of candidate features.

    Raises:
      ValueError: for mismatched lengths or example shapes, or directions of another shape.
    """
    name = "spurious_feature_check"
    _check_xy(name, train_x, train_y, "train")
    _check_xy(name, test_x, test_y, "test")
    check_labels_in_range(name, train_y, num_classes)
    check_labels_in_range(name, test_y, num_classes)
    if np.shape(train_x)[1:] != np.shape(test_x)[1:]:
        raise ValueError(
            f"{name}: expected train and test examples of the same shape, got "
            f"{np.shape(train_x)[1:]} and {np.shape(test_x)[1:]}"
        )
    if directions is not None:
        if np.shape(directions)[1:] != np.shape(train_x)[1:] or np.shape(directions)[0] == 0:
            raise ValueError(
                f"{name}: expected directions (K, ...) with examples of shape "
                f"{np.shape(train_x)[1:]}, got shape {np.shape(directions)}"
            )
        d = np.reshape(np.asarray(directions, np.float64), (np.shape(directions)[0], -1))
        train_x = np.reshape(np.asarray(train_x, np.float64), (len(train_y), -1)) @ d.T  # (N, K)
        test_x = np.reshape(np.asarray(test_x, np.float64), (len(test_y), -1)) @ d.T  # (M, K)
    r_train = np.asarray(label_correlation(train_x, train_y, num_classes=num_classes))  # (F, C)
    r_test = np.asarray(label_correlation(test_x, test_y, num_classes=num_classes))  # (F, C)
    tracked = np.argmax(np.abs(r_train), axis=1)  # (F,)
    rows = np.arange(len(tracked))
    train_corr, test_corr = np.abs(r_train[rows, tracked]), np.abs(r_test[rows, tracked])
    gap = train_corr - test_corr  # (F,)
    order = np.argsort(-gap)
    flagged = [int(f) for f in order if gap[f] > min_gap]
    return {
        "spurious": bool(flagged),
        "flagged": flagged,
        "gap": gap,
        "train_correlation": train_corr,
        "test_correlation": test_corr,
        "tracked_class": tracked,
        "top_feature": int(order[0]),
    }
