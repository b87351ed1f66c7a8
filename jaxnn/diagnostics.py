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
- :func:`label_signal`: labels that the inputs do not predict at all (shuffled labels).
- :func:`leakage_check`: exact and near duplicates across train, validation and test.
- :func:`overfit_tiny_batch`: "verify that loss decreases on a tiny subset of examples".
- :func:`lr_range_test`: a learning rate too high or too low, from one exponential sweep.
- :func:`activation_report`: dead ReLUs, saturated sigmoid and tanh units, per layer.
- :func:`find_nonfinite`: the first op (and layer) that produced a NaN or infinity, and the
  examples that trigger it.
- :func:`class_report`: per-class precision and recall; classes the model ignores.

The array-valued functions (:func:`layer_grad_norms`, :func:`suspicious_labels`,
:func:`feature_shift`, :func:`label_correlation`) are pure ``jax.numpy`` and compose with ``jit``;
the verdict functions read concrete values and return plain Python numbers and flags. The newer
checks return small frozen dataclasses (``ActivationReport``, ``LRRangeReport``, ...), each with
a ``verdict``, a one-line ``explanation``, the numbers behind them, ``flagged`` and ``to_dict()``.

How intermediates are read. :func:`activation_report` and :func:`find_nonfinite` need the
outputs of the layers inside ``model.apply`` without changing the models. They trace
``model.apply`` (or the loss around it) with ``jax.make_jaxpr`` and evaluate the jaxpr one
equation at a time, recording the outputs of ``dot_general``/``conv_general_dilated`` (the
layers, named after the parameter they multiply) and of the equations that compute an
activation (``logistic``, ``tanh``, or an output equal to ``relu(x)``/``sigmoid(x)`` of an input
or of the operand of the comparison that feeds a ``where``). This needs no hook in the models,
works for any function written in ``jax.numpy`` (a user's own model or loss included), and
sees every primitive, so the first NaN is located at the op that made it. An ``intermediates``
output, or a ``jax.debug.callback`` per layer, would need a change in every model. The price:
the evaluation is eager (slow for big models; use a small batch), and the inside of
``lax.scan``/``while_loop`` bodies (a recurrent cell) is evaluated as one step.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.extend import core as jcore

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
    "label_signal",
    "leakage_check",
    "overfit_tiny_batch",
    "lr_range_test",
    "activation_report",
    "find_nonfinite",
    "class_report",
    "jsonable",
    "LabelSignalReport",
    "LeakageReport",
    "OverfitReport",
    "LRRangeReport",
    "LayerActivation",
    "ActivationReport",
    "NonfiniteReport",
    "ClassReport",
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


# ---------------------------------------------------------------------------------------------
# Reports


class _Report:
    """Mixin of the typed reports below: ``flagged`` and a JSON-ready ``to_dict``."""

    __slots__ = ()
    _QUIET = ("healthy", "overfits", "ok", "clean", "finite", "signal", "inconclusive")

    @property
    def flagged(self) -> bool:
        """Whether the verdict names a problem."""
        return self.verdict not in self._QUIET

    def to_dict(self) -> dict:
        """The report as plain JSON-able values (arrays become lists)."""
        return {
            "verdict": self.verdict,
            "flagged": self.flagged,
            **{f.name: jsonable(getattr(self, f.name)) for f in dataclasses.fields(self)},
        }


def jsonable(value):
    """``value`` with arrays, NumPy scalars and dataclasses turned into JSON types (NaN -> None)."""
    if dataclasses.is_dataclass(value):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (np.ndarray, jax.Array)):
        return jsonable(np.asarray(value).tolist())
    if isinstance(value, (np.floating, float)):
        value = float(value)
        return value if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


# ---------------------------------------------------------------------------------------------
# Intermediates: evaluating a model's jaxpr one equation at a time

_CALLS = frozenset({"jit", "pjit", "closed_call", "core_call", "custom_jvp_call", "remat"})
_LAYERS = frozenset({"dot_general", "conv_general_dilated"})
_PASS_ORIGIN = frozenset(
    {"reshape", "convert_element_type", "transpose", "copy", "squeeze", "expand_dims"}
)
_COMPARE = frozenset({"gt", "ge", "lt", "le"})


class _Found(Exception):
    """Stops :class:`_Tap` at the first non-finite value."""


def _sub_jaxpr(eqn):
    if eqn.primitive.name not in _CALLS:
        return None
    for key in ("jaxpr", "call_jaxpr"):
        sub = eqn.params.get(key)
        if isinstance(sub, jcore.ClosedJaxpr):
            return sub.jaxpr, sub.consts
        if isinstance(sub, jcore.Jaxpr):
            return sub, ()
    return None


def _literal(var) -> bool:
    return isinstance(var, jcore.Literal)


def _bind(eqn, invals):
    with eqn.ctx.manager:
        out = eqn.primitive.bind(*invals, **eqn.primitive.get_bind_params(eqn.params))
    return list(out) if eqn.primitive.multiple_results else [out]


def _is_float(value) -> bool:
    return jnp.issubdtype(getattr(value, "dtype", np.float64), jnp.inexact)


def _finite(value) -> bool:
    return not _is_float(value) or bool(np.isfinite(np.asarray(value)).all())


def _activation_kind(eqn, out, candidates) -> str | None:
    """Name the activation ``out`` computes from one of ``candidates``, by its values."""
    name = eqn.primitive.name
    if name in ("logistic", "tanh"):
        return "sigmoid" if name == "logistic" else "tanh"
    y = np.asarray(out, np.float64)
    with np.errstate(over="ignore"):
        for x in candidates:
            kind = _match(np.asarray(x, np.float64), y)
            if kind is not None:
                return kind
    return None


def _match(x, y) -> str | None:
    if x.shape != y.shape or x.size == 0:
        return None
    if (x < 0).any() and np.array_equal(y, np.where(x > 0, x, 0.0)):
        return "relu"
    spread = np.abs(x).max() > 0.1
    if spread and np.allclose(y, 1.0 / (1.0 + np.exp(-x)), rtol=1e-5, atol=1e-6):
        return "sigmoid"
    return None


class _Tap:
    """Evaluate a jaxpr eagerly, recording layer outputs and activations (or the first NaN).

    A *layer* is the output of a ``dot_general`` or ``conv_general_dilated``, named after the
    parameter it multiplies (``['dense_0']``) when one of its operands is a parameter leaf. An
    *activation* is an equation whose output equals ``relu(x)`` or ``sigmoid(x)`` of one of its
    inputs, or of the operand of the comparison that feeds its predicate (so ``where(x > 0, x,
    0)`` counts), or a ``logistic`` or ``tanh`` primitive. Calls (``jit``, ``custom_jvp_call``)
    are entered unless they compute an activation as a whole; loops (``scan``, ``while``) are
    evaluated as one step, so a recurrent cell's insides are not seen.
    """

    def __init__(self, *, stop_at_nonfinite: bool = False):
        self.stop = stop_at_nonfinite
        self.records: list[dict] = []
        self.layer = "input"
        self.culprit: dict | None = None
        self._count = 0

    def run(self, jaxpr, consts, args, origins):
        env, origin, producer = {}, {}, {}

        def read(v):
            return v.val if _literal(v) else env[v]

        env.update(zip(jaxpr.constvars, consts, strict=True))
        for var, val, where in zip(jaxpr.invars, args, origins, strict=True):
            env[var] = val
            if where is not None:
                origin[var] = where
        for eqn in jaxpr.eqns:
            invals = [read(v) for v in eqn.invars]
            origins_in = [None if _literal(v) else origin.get(v) for v in eqn.invars]
            outvals = self._eval(eqn, invals, origins_in, producer, read)
            for var, val in zip(eqn.outvars, outvals, strict=True):
                env[var], producer[var] = val, eqn
            self._pass_origin(eqn, origin)
        return [read(v) for v in jaxpr.outvars]

    def _pass_origin(self, eqn, origin):
        sources = [origin[v] for v in eqn.invars if not _literal(v) and v in origin]
        if eqn.primitive.name in _PASS_ORIGIN and sources:
            origin[eqn.outvars[0]] = sources[0]

    def _eval(self, eqn, invals, origins, producer, read):
        outvals = _bind(eqn, invals)
        sub = _sub_jaxpr(eqn)
        if self.stop:
            if all(map(_finite, invals)) and not all(map(_finite, outvals)):
                if sub is None:
                    self._blame(eqn, outvals)
                self.run(*sub, invals, origins)  # a call: find the equation inside it
                self._blame(eqn, outvals)
            self._note_layer(eqn, origins, None)
            return outvals
        kind = None
        if len(outvals) == 1 and _is_float(outvals[0]):
            kind = _activation_kind(eqn, outvals[0], self._candidates(eqn, invals, producer, read))
        if kind is not None:
            self._record(kind, f"{kind} after {self.layer}", outvals[0])
        elif sub is not None:
            self.run(*sub, invals, origins)
        else:
            self._note_layer(eqn, origins, outvals[0])
        return outvals

    @staticmethod
    def _candidates(eqn, invals, producer, read):
        found = [v for v in invals if np.ndim(v) > 0 and _is_float(v)]
        for var in eqn.invars:
            source = None if _literal(var) else producer.get(var)
            if source is not None and source.primitive.name in _COMPARE:
                found += [
                    read(v) for v in source.invars if np.ndim(read(v)) > 0 and _is_float(read(v))
                ]
        return found

    def _note_layer(self, eqn, origins, out):
        if eqn.primitive.name not in _LAYERS:
            return
        self._count += 1
        params = [o for o in origins if o is not None]
        self.layer = params[0] if params else f"{eqn.primitive.name}_{self._count}"
        if out is not None:
            self._record("layer", self.layer, out)

    def _record(self, kind, name, value):
        self.records.append({"kind": kind, "name": name, "layer": self.layer, "value": value})

    def _blame(self, eqn, outvals):
        self.culprit = {"op": eqn.primitive.name, "layer": self.layer, "value": outvals}
        raise _Found


def _param_origins(params) -> list[str]:
    leaves = jax.tree_util.tree_flatten_with_path(params)[0]
    return [jax.tree_util.keystr(path[:-1] if len(path) > 1 else path) for path, _ in leaves]


def _tap(fun, params, *args, stop_at_nonfinite=False) -> _Tap:
    """Trace ``fun(params, *args)`` and run it through a :class:`_Tap`."""
    closed = jax.make_jaxpr(fun)(params, *args)
    leaves = jax.tree_util.tree_leaves((params, *args))
    origins = _param_origins(params)
    origins += [None] * (len(leaves) - len(origins))
    tap = _Tap(stop_at_nonfinite=stop_at_nonfinite)
    try:
        tap.run(closed.jaxpr, closed.consts, leaves, origins)
    except _Found:
        pass
    return tap


# ---------------------------------------------------------------------------------------------
# Activations: dead ReLUs, saturated sigmoid and tanh units


@dataclasses.dataclass(frozen=True)
class LayerActivation:
    """One recorded intermediate: a layer's output or an activation's output.

    Attributes:
      name: ``['dense_0']`` for a layer, ``relu after ['dense_0']`` for an activation.
      kind: ``layer``, ``relu``, ``sigmoid`` or ``tanh``.
      shape: the output's shape, batch axis first.
      mean: mean of the output over the batch.
      std: standard deviation of the output over the batch.
      dead_fraction: for ``relu``, the share of units (last axis) never positive on the batch.
      saturated_fraction: for ``sigmoid``/``tanh``, the share of outputs within ``eps`` of an
        asymptote (derivative below about ``eps``).
      hist_counts: histogram of the output values (for the doctor's figure).
      hist_edges: the histogram's bin edges.
    """

    name: str
    kind: str
    shape: tuple
    mean: float
    std: float
    dead_fraction: float | None
    saturated_fraction: float | None
    hist_counts: tuple
    hist_edges: tuple


@dataclasses.dataclass(frozen=True)
class ActivationReport(_Report):
    """What :func:`activation_report` found (verdict ``healthy``, ``dead_relu``, ``saturated``)."""

    verdict: str
    explanation: str
    layers: tuple
    worst_dead_fraction: float
    worst_saturated_fraction: float


def _layer_stats(record: dict, eps: float) -> LayerActivation:
    v = np.asarray(record["value"], np.float64)
    kind = record["kind"]
    dead = sat = None
    if kind == "relu":
        units = v.reshape(-1, v.shape[-1]) if v.ndim > 1 else v.reshape(-1, 1)
        dead = float((units.max(axis=0) <= 0).mean())
    elif kind == "sigmoid":
        sat = float(((v < eps) | (v > 1 - eps)).mean())
    elif kind == "tanh":
        sat = float((np.abs(v) > 1 - eps).mean())
    finite = v[np.isfinite(v)]
    counts, edges = np.histogram(finite if finite.size else np.zeros(1), bins=40)
    return LayerActivation(
        name=record["name"],
        kind=kind,
        shape=tuple(v.shape),
        mean=float(finite.mean()) if finite.size else math.nan,
        std=float(finite.std()) if finite.size else math.nan,
        dead_fraction=dead,
        saturated_fraction=sat,
        hist_counts=tuple(int(c) for c in counts),
        hist_edges=tuple(float(e) for e in edges),
    )


def activation_report(
    model,
    params,
    x,
    *,
    model_state=None,
    max_dead: float = 0.3,
    max_saturated: float = 0.3,
    eps: float = 0.01,
) -> ActivationReport:
    """Per layer: dead ReLUs, saturated sigmoid and tanh units, and the mean and std.

    Chapter 14: vanishing gradients have two common causes inside the network. A ReLU unit whose
    input is negative for every example (``max_b h_{b,j} <= 0``) passes no gradient and never
    recovers ("dead"); a sigmoid or tanh unit driven far from zero sits on its flat tail, where
    ``sigmoid'(z) = s(1 - s)`` and ``tanh'(z) = 1 - t^2`` are near zero ("saturated").

    The intermediates are read without touching the model: ``model.apply`` is traced with
    ``jax.make_jaxpr`` and the jaxpr evaluated one equation at a time (see :class:`_Tap`), so any
    model built from jax.numpy works, including ones whose code does not name its layers.

    The verdict is ``dead_relu`` when some ReLU layer has ``dead_fraction > max_dead``,
    ``saturated`` when some sigmoid/tanh layer has ``saturated_fraction > max_saturated``, and
    ``healthy`` otherwise (also when the model has no such activation).

    Args:
      model: a :class:`jaxnn.models.Model`.
      params: its parameters.
      x: a batch of inputs (B, ...); a few hundred examples make the dead-unit test meaningful.
      model_state: the model state (default: ``model.init``'s, e.g. fresh batch-norm statistics).
      max_dead: share of dead units above which a ReLU layer is flagged.
      max_saturated: share of saturated outputs above which a sigmoid/tanh layer is flagged.
      eps: distance from the asymptote (0 or 1 for sigmoid, +-1 for tanh) that counts as
        saturated.

    Returns:
      An :class:`ActivationReport`; ``layers`` lists every layer output and activation, input
      to output.
    """
    state = _default_state(model, model_state)
    model = _unrolled(model)
    tap = _tap(
        lambda p, xb: model.apply(p, xb, state=state, train=False)[0], params, jnp.asarray(x)
    )
    layers = tuple(_layer_stats(r, eps) for r in tap.records)
    dead = max((a.dead_fraction for a in layers if a.dead_fraction is not None), default=0.0)
    sat = max(
        (a.saturated_fraction for a in layers if a.saturated_fraction is not None), default=0.0
    )
    if dead > max_dead:
        worst = max((a for a in layers if a.kind == "relu"), key=lambda a: a.dead_fraction)
        verdict = "dead_relu"
        why = f"{dead:.0%} of the units of {worst.name} are never positive on the batch"
    elif sat > max_saturated:
        worst = max(
            (a for a in layers if a.saturated_fraction is not None),
            key=lambda a: a.saturated_fraction,
        )
        verdict = "saturated"
        why = f"{sat:.0%} of the outputs of {worst.name} sit on a flat tail"
    else:
        verdict = "healthy"
        kinds = sorted({a.kind for a in layers} - {"layer"}) or ["no relu/sigmoid/tanh"]
        why = f"{len(layers)} intermediates ({', '.join(kinds)}): worst dead {dead:.0%}, "
        why += f"worst saturated {sat:.0%}"
    return ActivationReport(verdict, why, layers, dead, sat)


def _unrolled(model):
    """``model`` with ``remat`` off: the same outputs and gradients, and its layers one by one in
    the jaxpr (with ``remat`` they run inside a ``lax.scan``, which :class:`_Tap` does not enter).
    """
    cfg = getattr(model, "cfg", None)
    if not getattr(cfg, "remat", False):
        return model
    from jaxnn import models

    return models.build(model.name, dataclasses.replace(cfg, remat=False))


def _default_state(model, model_state):
    if model_state is not None:
        return model_state
    return model.init(jax.random.key(0))[1]


# ---------------------------------------------------------------------------------------------
# The first NaN or infinity


@dataclasses.dataclass(frozen=True)
class NonfiniteReport(_Report):
    """What :func:`find_nonfinite` found (verdict ``finite`` or ``nonfinite``).

    Attributes:
      stage: ``forward`` (a value of the loss computation) or ``backward`` (a gradient).
      op: the primitive whose output first went non-finite from finite inputs (``log``,
        ``div``, ``exp``, ...).
      layer: the latest layer evaluated before that op (``['dense_1']``), or ``input``.
      parameter: for ``backward``, the first parameter leaf whose gradient is non-finite.
      examples: indices (into the batch) of the examples that produce a non-finite value alone.
    """

    verdict: str
    explanation: str
    stage: str | None = None
    op: str | None = None
    layer: str | None = None
    parameter: str | None = None
    examples: tuple = ()


def _default_loss(task: str):
    from jaxnn.train.step import per_example_metrics

    return lambda outputs, y: per_example_metrics(task, outputs, y)[0]


def _rows_with_nonfinite(values, batch: int):
    for v in values:
        if _is_float(v) and np.ndim(v) >= 1 and np.shape(v)[0] == batch:
            arr = np.isfinite(np.asarray(v)).reshape(batch, -1)
            return tuple(int(i) for i in np.flatnonzero(~arr.all(axis=1)))
    return None


def _examples_alone(fun, x, y, limit: int):
    one = jax.jit(fun)
    bad = []
    for i in range(min(len(x), limit)):
        if not all(map(_finite, jax.tree_util.tree_leaves(one(x[i : i + 1], y[i : i + 1])))):
            bad.append(i)
    return tuple(bad)


def find_nonfinite(
    model,
    params,
    batch,
    *,
    model_state=None,
    loss_fn=None,
    task: str = "classification",
    max_examples: int = 256,
) -> NonfiniteReport:
    """The first layer output or parameter gradient that is NaN or infinite, and who caused it.

    Chapter 14: exploding values end in NaN, and "the first NaN" is the place to look: a log or
    a division at zero, an exponential that overflowed, a gradient through a square root at 0.
    The loss ``loss_fn(model.apply(params, x), y)`` (its mean, if not a scalar) is traced with
    ``jax.make_jaxpr`` and evaluated one equation at a time; the first equation whose inputs are
    finite and whose output is not is reported with the layer before it. If the forward pass
    is finite, the same is done for the gradient's jaxpr, and the first parameter leaf with a
    non-finite gradient is named. The examples are the batch rows that are non-finite at that
    op, or else those whose loss (gradient) is non-finite on their own.

    Args:
      model: a :class:`jaxnn.models.Model`.
      params: its parameters.
      batch: ``(x, y)``.
      model_state: the model state (default: ``model.init``'s).
      loss_fn: ``(outputs, y) -> loss`` (per example or a scalar); default the training loss of
        ``task``.
      task: see :data:`jaxnn.train.step.TASKS`.
      max_examples: examples tried one by one when the op's output has no batch axis.

    Returns:
      A :class:`NonfiniteReport`.
    """
    x, y = jnp.asarray(batch[0]), jnp.asarray(batch[1])
    state = _default_state(model, model_state)
    model = _unrolled(model)
    loss_fn = _default_loss(task) if loss_fn is None else loss_fn

    def loss(p, xb, yb):
        return jnp.mean(loss_fn(model.apply(p, xb, state=state, train=False)[0], yb))

    value, grads = jax.jit(jax.value_and_grad(loss))(params, x, y)
    if not _finite(value):
        return _nonfinite_forward(loss, params, x, y, max_examples)
    return _nonfinite_gradient(loss, grads, params, x, y, max_examples)


def _nonfinite_forward(loss, params, x, y, max_examples) -> NonfiniteReport:
    tap = _tap(loss, params, x, y, stop_at_nonfinite=True)
    c = tap.culprit or {"op": None, "layer": None, "value": []}
    rows = _rows_with_nonfinite(c["value"], len(x))
    if rows is None:
        rows = _examples_alone(lambda xb, yb: loss(params, xb, yb), x, y, max_examples)
    why = f"the forward pass first goes non-finite at {c['op']} after {c['layer']}"
    why += f" (examples {list(rows[:10])})"
    return NonfiniteReport("nonfinite", why, "forward", c["op"], c["layer"], None, rows)


def _nonfinite_gradient(loss, grads, params, x, y, max_examples) -> NonfiniteReport:
    grad = jax.grad(loss)
    leaves = jax.tree_util.tree_flatten_with_path(grads)[0]
    bad = [jax.tree_util.keystr(path) for path, g in leaves if not _finite(g)]
    if not bad:
        return NonfiniteReport("finite", "the loss and every parameter gradient are finite")
    tap = _tap(grad, params, x, y, stop_at_nonfinite=True)
    op = tap.culprit["op"] if tap.culprit else None
    layer = tap.culprit["layer"] if tap.culprit else None
    rows = _examples_alone(lambda xb, yb: grad(params, xb, yb), x, y, max_examples)
    why = f"the loss is finite but the gradient of {bad[0]} is not (first at {op} in the "
    why += f"backward pass; examples {list(rows[:10])})"
    return NonfiniteReport("nonfinite", why, "backward", op, layer, bad[0], rows)


# ---------------------------------------------------------------------------------------------
# The tiny-subset overfit test


@dataclasses.dataclass(frozen=True)
class OverfitReport(_Report):
    """What :func:`overfit_tiny_batch` found (verdict ``overfits`` or ``fails``)."""

    verdict: str
    explanation: str
    losses: tuple
    initial_loss: float
    final_loss: float
    final_accuracy: float
    steps: int
    examples: int


def overfit_tiny_batch(
    model,
    tx,
    batch,
    *,
    steps: int = 200,
    task: str = "classification",
    seed: int = 0,
    max_loss_ratio: float = 0.05,
) -> OverfitReport:
    """Train on a handful of examples and say whether the loss goes to about zero.

    Chapter 14: "verify that loss decreases on a tiny subset of examples". A network with enough
    capacity memorizes a few examples in a few hundred steps; if it cannot, the fault is in the
    pipeline (inputs and labels that do not match, a loss on the wrong outputs), the optimizer
    (a learning rate far too high or too low) or a model too small, not in the amount of data.

    The batch is trained ``steps`` times with the training loop's own step
    (:func:`jaxnn.train.step.make_train_step`, one ``lax.scan``), from ``model.init``. With
    ``L_0`` the first loss and ``L_min`` the lowest loss of the last tenth of the steps, the
    verdict is ``overfits`` when every example is classified right and ``L_min <= L_0 / 2``, or
    when ``L_min <= max_loss_ratio * L_0`` (about 0.12 nats from the
    2.3 of ten classes at chance), and ``fails`` otherwise.

    Args:
      model: a :class:`jaxnn.models.Model`.
      tx: the optax optimizer to test (the one the run would use).
      batch: ``(x, y)`` with a few examples (8 to 64).
      steps: training steps on the batch.
      task: see :data:`jaxnn.train.step.TASKS`.
      seed: initialization seed.
      max_loss_ratio: final-to-first loss ratio that counts as memorized.

    Returns:
      An :class:`OverfitReport` with the loss curve.
    """
    from jaxnn import _xla
    from jaxnn.train.state import create_train_state
    from jaxnn.train.step import make_train_step

    steps = check_positive_int("overfit_tiny_batch", steps, "steps")
    x, y = jnp.asarray(batch[0]), jnp.asarray(batch[1])
    step = make_train_step(model, tx, task=task, jitted=False)

    def run(state):
        return jax.lax.scan(lambda s, _: step(s, x, y), state, None, length=steps)[1]

    workload = getattr(model, "name", None)
    metrics = _xla.jit(run, workload=workload)(create_train_state(model, tx, seed))
    losses = np.asarray(metrics["loss"], np.float64)  # (steps,)
    acc = np.asarray(metrics["accuracy"], np.float64)
    tail = losses[-max(1, steps // 10) :]
    first, last = float(losses[0]), float(np.nanmin(tail)) if np.isfinite(tail).any() else math.nan
    # Memorized: the loss is near zero, or every example is fitted and the loss has halved
    # (a small learning rate gets there before the loss is near zero).
    fitted = float(acc[-1]) == 1.0 and last <= 0.5 * first
    ok = math.isfinite(last) and (last <= max_loss_ratio * first or fitted)
    verdict = "overfits" if ok else "fails"
    why = f"the loss on {len(x)} examples went from {first:.3g} to {last:.3g} in {steps} steps"
    why += " (memorized)" if ok else f", above {max_loss_ratio:g} of its start: not memorized"
    return OverfitReport(
        verdict, why, tuple(losses.tolist()), first, last, float(acc[-1]), steps, len(x)
    )


# ---------------------------------------------------------------------------------------------
# The learning-rate range test


@dataclasses.dataclass(frozen=True)
class LRRangeReport(_Report):
    """What :func:`lr_range_test` found (``ok``, ``too_high``, ``too_low``, ``inconclusive``).

    Attributes:
      lrs, losses, smoothed: the sweep, up to the divergence point.
      min_loss_lr: the rate at the lowest smoothed loss.
      steepest_lr: the rate where the smoothed loss fell fastest per decade.
      suggested_lr: ``min_loss_lr / 10``.
      suggested_range: ``(min_loss_lr / 100, min_loss_lr / 3)``.
      divergence_lr: the rate at which the loss diverged (``None`` if it never did).
      lr: the rate that was judged (``None`` if none was given).
    """

    verdict: str
    explanation: str
    lrs: tuple
    losses: tuple
    smoothed: tuple
    min_loss_lr: float | None
    steepest_lr: float | None
    suggested_lr: float | None
    suggested_range: tuple | None
    divergence_lr: float | None
    lr: float | None


def _sweep(model, data, lrs, *, optimizer, batch_size, task, seed):
    """Train once at each rate in ``lrs`` in turn; return the loss of each step (before it)."""
    from jaxnn import optim
    from jaxnn.train.state import create_train_state

    tx, _ = optim.make_optimizer(optimizer, 1.0)
    state = create_train_state(model, tx, seed)
    loss_of = _default_loss(task)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(data), (len(lrs), min(batch_size, len(data))))  # (S, B)
    x_all, y_all = jnp.asarray(data.x), jnp.asarray(data.y)

    def step(carry, inputs):
        params, model_state, opt_state = carry
        lr, rows, i = inputs

        def loss_fn(p):
            out, new_state = model.apply(
                p, x_all[rows], state=model_state, train=True, key=jax.random.fold_in(state.rng, i)
            )
            return jnp.mean(loss_of(out, y_all[rows])), new_state

        (loss, new_state), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        params = jax.tree.map(lambda p, u: p + lr * u, params, updates)
        return (params, new_state, opt_state), loss

    carry = (state.params, state.model_state, state.opt_state)
    inputs = (jnp.asarray(lrs, jnp.float32), jnp.asarray(idx), jnp.arange(len(lrs)))
    losses = jax.jit(lambda c, i: jax.lax.scan(step, c, i)[1])(carry, inputs)
    return np.asarray(losses, np.float64)


def _smooth(losses, beta: float):
    out, avg = np.empty_like(losses), 0.0
    for i, v in enumerate(losses):
        avg = beta * avg + (1 - beta) * v
        out[i] = avg / (1 - beta ** (i + 1))
    return out


def _divergence(losses, smoothed, factor: float) -> int:
    """Index of the first step that diverged (``len`` if none)."""
    best = np.minimum.accumulate(np.where(np.isfinite(smoothed), smoothed, np.inf))
    bad = ~np.isfinite(losses) | ~np.isfinite(smoothed) | (smoothed > factor * best)
    return int(np.argmax(bad)) if bad.any() else len(losses)


def _lr_verdict(lr, no_signal, min_lr, div_lr, low_factor) -> tuple[str, str]:
    if no_signal:
        return "inconclusive", "the loss fell at no rate of the sweep (too few steps to judge)"
    if lr is None:
        return "ok", f"the loss falls fastest below {min_lr:.2g}"
    if (div_lr is not None and lr >= div_lr) or lr > min_lr:
        return "too_high", f"lr {lr:.2g} is past the loss minimum of the sweep at {min_lr:.2g}"
    if lr < low_factor * min_lr:
        return "too_low", f"lr {lr:.2g} is over {1 / low_factor:.0f}x below {min_lr:.2g}"
    return "ok", f"lr {lr:.2g} is below the loss minimum of the sweep at {min_lr:.2g}"


def lr_range_test(
    model,
    data,
    *,
    lr: float | None = None,
    optimizer: str = "adam",
    start_lr: float = 1e-6,
    end_lr: float = 10.0,
    steps: int = 200,
    batch_size: int = 64,
    task: str = "classification",
    seed: int = 0,
    smoothing: float = 0.9,
    diverge_factor: float = 4.0,
    min_drop: float = 0.05,
    low_factor: float = 1e-3,
) -> LRRangeReport:
    """Sweep the learning rate exponentially while training and read the loss curve.

    Chapter 14 (and Chapter 8): a learning rate that is too high makes the loss oscillate or
    diverge; one too low makes progress so slow that the run looks like underfitting. One run of
    ``steps`` steps from ``model.init`` raises the rate geometrically,

        eta_i = start_lr * (end_lr / start_lr) ** (i / (steps - 1)),

    on random batches of ``data``. The losses are smoothed by a bias-corrected exponential
    average ``s_i`` (weight ``smoothing``); the sweep diverges at the first step whose loss is
    not finite or whose ``s_i`` exceeds ``diverge_factor`` times the lowest ``s`` so far, and the
    curve is cut there. With ``eta*`` the rate at the lowest ``s``:

    - ``inconclusive``: ``s`` never fell by ``min_drop`` of its start, so there is no minimum to
      judge by (a slow learner needs a longer sweep; a model that learns nothing at all fails
      :func:`overfit_tiny_batch`);
    - ``too_high``: ``lr > eta*`` or ``lr`` at or past the divergence point;
    - ``too_low``: ``lr < low_factor * eta*``;
    - ``ok`` otherwise; the suggestion is ``eta* / 10`` (the rate a run can hold from the start).

    Args:
      model: a :class:`jaxnn.models.Model`.
      data: a :class:`jaxnn.data.Dataset` (the training split).
      lr: the learning rate to judge (optional).
      optimizer: a name from :func:`jaxnn.optim.make_optimizer`; its step direction is scaled by
        ``eta_i`` each step.
      start_lr, end_lr: the sweep's ends.
      steps: sweep length.
      batch_size: examples per step.
      task: see :data:`jaxnn.train.step.TASKS`.
      seed: initialization and batch seed.
      smoothing: weight of the exponential average in ``[0, 1)``.
      diverge_factor: smoothed-loss rise over its minimum that counts as divergence.
      min_drop: relative fall of the smoothed loss that counts as learning.
      low_factor: share of ``eta*`` below which ``lr`` is too low.

    Returns:
      An :class:`LRRangeReport`.
    """
    steps = check_positive_int("lr_range_test", steps, "steps")
    if not 0 < start_lr < end_lr:
        raise ValueError(f"lr_range_test: expected 0 < start_lr < end_lr, got {start_lr}, {end_lr}")
    lrs = start_lr * (end_lr / start_lr) ** (np.arange(steps) / max(steps - 1, 1))
    losses = _sweep(
        model, data, lrs, optimizer=optimizer, batch_size=batch_size, task=task, seed=seed
    )
    smoothed = _smooth(np.where(np.isfinite(losses), losses, np.inf), smoothing)
    stop = max(_divergence(losses, smoothed, diverge_factor), 1)
    div_lr = float(lrs[stop]) if stop < steps else None
    lrs, losses, smoothed = lrs[:stop], losses[:stop], smoothed[:stop]
    best = int(np.argmin(smoothed))
    min_lr = float(lrs[best])
    start = float(np.median(losses[:5]))
    no_signal = not smoothed[best] < (1 - min_drop) * start
    slope = np.gradient(smoothed[: best + 1], np.log10(lrs[: best + 1])) if best > 1 else [0.0]
    steepest = float(lrs[int(np.argmin(slope))])
    verdict, why = _lr_verdict(lr, no_signal, min_lr, div_lr, low_factor)
    return LRRangeReport(
        verdict=verdict,
        explanation=why + (f"; diverges at {div_lr:.2g}" if div_lr is not None else ""),
        lrs=tuple(lrs.tolist()),
        losses=tuple(losses.tolist()),
        smoothed=tuple(smoothed.tolist()),
        min_loss_lr=None if no_signal else min_lr,
        steepest_lr=None if no_signal else steepest,
        suggested_lr=None if no_signal else min_lr / 10,
        suggested_range=None if no_signal else (min_lr / 100, min_lr / 3),
        divergence_lr=div_lr,
        lr=lr,
    )


# ---------------------------------------------------------------------------------------------
# Labels that carry no signal


@dataclasses.dataclass(frozen=True)
class LabelSignalReport(_Report):
    """What :func:`label_signal` found (verdict ``signal`` or ``no_signal``)."""

    verdict: str
    explanation: str
    accuracy: float
    chance: float
    threshold: float
    k: int
    examples: int


def _flat(x, limit: int) -> np.ndarray:
    return np.asarray(x[:limit], np.float32).reshape(min(len(x), limit), -1)


def _nearest(queries: np.ndarray, refs: np.ndarray, k: int, chunk: int = 512):
    """Indices (Q, k) and squared distances (Q, k) of each query's k nearest references."""
    r = jnp.asarray(refs)
    r2 = jnp.sum(r * r, axis=1)  # (R,)
    idx, dist = [], []
    for start in range(0, len(queries), chunk):
        q = jnp.asarray(queries[start : start + chunk])  # (q, F)
        d = jnp.sum(q * q, axis=1)[:, None] - 2 * q @ r.T + r2[None, :]  # (q, R)
        neg, i = jax.lax.top_k(-d, k)
        idx.append(np.asarray(i))
        dist.append(np.maximum(-np.asarray(neg), 0.0))
    return np.concatenate(idx), np.concatenate(dist)


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
    refs, queries = _flat(train.x, max_examples), _flat(val.x, max_examples)
    k = min(k, len(refs))
    idx, _ = _nearest(queries, refs, k)
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
# Leakage between splits


@dataclasses.dataclass(frozen=True)
class LeakageReport(_Report):
    """What :func:`leakage_check` found (verdict ``clean`` or ``leakage``).

    Attributes:
      pairs: ``{"train/val": {"exact": n, "near": n, "fraction": f, "examples": [...]}, ...}``:
        for each later split, how many of its examples have an exact or a near duplicate in an
        earlier split, that share of the later split, and the first indices (into it).
    """

    verdict: str
    explanation: str
    pairs: dict
    max_fraction: float


def _split_arrays(splits) -> dict:
    if isinstance(splits, Mapping):
        return {k: (v.x if hasattr(v, "x") else v) for k, v in splits.items()}
    test = splits.test.unseal("leakage_check: compare inputs only, nothing is scored")
    return {"train": splits.train.x, "val": splits.val.x, "test": test.x}


def _duplicates(ref: np.ndarray, other: np.ndarray, near: float) -> tuple:
    seen = {row.tobytes() for row in ref}
    exact = np.array([row.tobytes() in seen for row in other])
    _, d2 = _nearest(other, ref, 1)
    dist = np.sqrt(d2[:, 0])
    scale = float(np.median(dist[~exact])) if (~exact).any() else 0.0
    close = (dist <= near * scale) & ~exact
    return exact, close


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
        k: _flat(np.ascontiguousarray(v), max_examples) for k, v in _split_arrays(splits).items()
    }
    names, pairs, worst = list(arrays), {}, ("", 0.0)
    for j, later in enumerate(names):
        for earlier in names[:j]:
            exact, close = _duplicates(arrays[earlier], arrays[later], near)
            hit = exact | close
            fraction = float(hit.mean())
            pairs[f"{earlier}/{later}"] = {
                "exact": int(exact.sum()),
                "near": int(close.sum()),
                "fraction": fraction,
                "examples": [int(i) for i in np.flatnonzero(hit)[:10]],
            }
            if fraction > worst[1]:
                worst = (f"{earlier}/{later}", fraction)
    verdict = "leakage" if worst[1] > max_fraction else "clean"
    if worst[0]:
        p = pairs[worst[0]]
        why = f"{worst[0]}: {p['exact']} exact and {p['near']} near duplicates "
        why += f"({worst[1]:.1%} of {worst[0].split('/')[1]})"
    else:
        why = "no duplicates across splits"
    return LeakageReport(verdict, why, pairs, max_fraction)


# ---------------------------------------------------------------------------------------------
# Per-class precision and recall


@dataclasses.dataclass(frozen=True)
class ClassReport(_Report):
    """What :func:`class_report` found (verdict ``healthy`` or ``ignored_classes``)."""

    verdict: str
    explanation: str
    precision: tuple
    recall: tuple
    support: tuple
    predicted: tuple
    ignored: tuple


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
    pred = np.asarray(predictions)
    if pred.ndim == 2:
        pred = pred.argmax(axis=1)
    if pred.shape != np.shape(labels) or pred.ndim != 1:
        raise ValueError(
            f"{name}: expected predictions (N,) or (N, C) and labels (N,), got shapes "
            f"{np.shape(predictions)} and {np.shape(labels)}"
        )
    check_integer_dtype(name, labels)
    check_labels_in_range(name, labels, num_classes)
    y = np.asarray(labels)
    tp = np.bincount(y[pred == y], minlength=num_classes).astype(np.float64)
    support = np.bincount(y, minlength=num_classes)
    predicted = np.bincount(pred, minlength=num_classes)[:num_classes]
    with np.errstate(divide="ignore", invalid="ignore"):
        precision, recall = tp / predicted, tp / support
    ignored = tuple(int(c) for c in np.flatnonzero((support > 0) & (recall < min_recall)))
    verdict = "ignored_classes" if ignored else "healthy"
    worst = int(np.nanargmin(recall)) if (support > 0).any() else 0
    why = f"classes {list(ignored)} are (almost) never predicted" if ignored else ""
    why = why or f"lowest recall {recall[worst]:.2f} (class {worst})"
    return ClassReport(
        verdict,
        why,
        tuple(precision.tolist()),
        tuple(recall.tolist()),
        tuple(int(s) for s in support),
        tuple(int(p) for p in predicted),
        ignored,
    )
