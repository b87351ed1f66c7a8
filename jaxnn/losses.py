"""Loss functions and metrics — Chapter 4: the loss defines the goal (regularization, Chapter 13).

Every loss computes one value per example and reduces over the examples: ``reduction="mean"``
(the default), ``"sum"``, or ``"none"`` (per-example values). For ``cross_entropy`` an example is a
position of the leading axes (all but the class axis); for ``mse`` and ``binary_cross_entropy`` it
is a slice along the first axis, the remaining axes being averaged inside the example. So the
default ``"mean"`` is always the mean over all elements, as in :mod:`optax` and PyTorch.

Classification losses take logits, never probabilities, and work in log space (log-softmax,
log-sigmoid), so they stay finite for logit gaps of ``1e4``. Each is tested equal to its optax
counterpart.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxnn._checks import (
    as_array,
    check_floating_dtype,
    check_labels_in_range,
    check_min_rank,
    check_probability,
    check_same_shape,
)
from jaxnn.activations import log_softmax

__all__ = ["mse", "cross_entropy", "binary_cross_entropy", "l2_penalty", "accuracy"]

_REDUCTIONS = ("mean", "sum", "none")


def _reduce(per_example: jax.Array, reduction: str) -> jax.Array:
    if reduction == "mean":
        return jnp.mean(per_example)
    if reduction == "sum":
        return jnp.sum(per_example)
    return per_example


def _check_reduction(name: str, reduction: str) -> None:
    if not isinstance(reduction, str) or reduction not in _REDUCTIONS:
        raise ValueError(f"{name}: expected reduction in {_REDUCTIONS}, got {reduction!r}")


def _check_examples(name: str, shape: tuple[int, ...], reduction: str, inside: str) -> None:
    """Refuse empty examples, and a mean over no examples: both would be 0 / 0 = NaN.

    ``shape`` is the input's shape; its first ``examples`` axes index the examples and the rest
    (``inside``) is averaged within each example.
    """
    batch, rest = (shape[:1], shape[1:]) if inside == "features" else (shape[:-1], shape[-1:])
    if 0 in rest:
        raise ValueError(f"{name}: expected non-empty {inside} in each example, got shape {shape}")
    if reduction == "mean" and 0 in batch:
        raise ValueError(
            f"{name}: expected at least one example for reduction='mean', got shape {shape}"
        )


def _mean_over_features(values: jax.Array) -> jax.Array:
    """Average every axis after the first, giving one value per example."""
    return jnp.mean(values, axis=tuple(range(1, values.ndim))) if values.ndim > 1 else values


def _is_integer_labels(name: str, logits: jax.Array, labels) -> bool:
    """Dispatch on rank: (..., ) integer labels or (..., C) probability targets; validate both."""
    check_min_rank(name, logits, 1)
    labels_dtype = labels.dtype if hasattr(labels, "dtype") else np.asarray(labels).dtype
    if np.ndim(labels) == logits.ndim - 1:
        if not jnp.issubdtype(labels_dtype, jnp.integer):
            raise ValueError(
                f"{name}: expected integer labels of shape {logits.shape[:-1]} for logits of shape "
                f"{logits.shape} (pass float targets of shape {logits.shape} for probabilities), "
                f"got dtype {labels_dtype} with shape {np.shape(labels)}"
            )
        if np.shape(labels) != logits.shape[:-1]:
            raise ValueError(
                f"{name}: expected labels of shape {logits.shape[:-1]} to match logits of shape "
                f"{logits.shape}, got labels of shape {np.shape(labels)}"
            )
        check_labels_in_range(name, labels, logits.shape[-1])
        return True
    if np.ndim(labels) == logits.ndim:
        if np.shape(labels) != logits.shape:
            raise ValueError(
                f"{name}: expected probability targets of shape {logits.shape} ({logits.shape[-1]} "
                f"classes) to match the logits, got shape {np.shape(labels)}"
            )
        if not jnp.issubdtype(labels_dtype, jnp.floating):
            raise ValueError(
                f"{name}: expected floating-point probability targets of shape {logits.shape} "
                f"(or integer labels of shape {logits.shape[:-1]}), got dtype {labels_dtype}"
            )
        return False
    raise ValueError(
        f"{name}: expected integer labels of rank {logits.ndim - 1} {logits.shape[:-1]} or "
        f"probability targets of rank {logits.ndim} {logits.shape} for logits of shape "
        f"{logits.shape}, got rank {np.ndim(labels)} with shape {np.shape(labels)}"
    )


def mse(pred: jax.Array, target: jax.Array, *, reduction: str = "mean") -> jax.Array:
    """Mean squared error: ``L = mean_i (pred_i - target_i)^2``.

    Chapter 4: the regression loss. Per example (a slice along the first axis) it averages the
    squared differences over the remaining axes; ``reduction`` then combines the examples. Equal to
    ``mean(optax.squared_error(pred, target))`` (twice ``optax.l2_loss``, which carries a 1/2).

    Args:
      pred: predictions ``(B, ...)``, rank >= 1.
      target: targets with the same shape.
      reduction: ``"mean"``, ``"sum"`` or ``"none"`` (shape ``(B,)``).

    Returns:
      A scalar, or ``(B,)`` for ``reduction="none"``.

    Raises:
      ValueError: on non-numeric or rank-0 inputs, mismatched shapes, empty examples, no examples
        for ``reduction="mean"`` or an unknown reduction.
    """
    _check_reduction("mse", reduction)
    pred, target = as_array("mse", pred, "pred"), as_array("mse", target, "target")
    check_min_rank("mse", pred, 1)
    check_same_shape("mse", pred, target, "pred", "target")
    _check_examples("mse", pred.shape, reduction, "features")
    return _reduce(_mean_over_features((pred - target) ** 2), reduction)


def cross_entropy(
    logits: jax.Array,
    labels: jax.Array,
    *,
    label_smoothing: float = 0.0,
    reduction: str = "mean",
) -> jax.Array:
    """Softmax cross-entropy from logits: ``L = -sum_c q_c log softmax(z)_c``.

    Chapter 4: penalizes a low probability on the true class. The target distribution ``q`` comes
    from ``labels``, chosen by rank (and checked by dtype):

    * integer class labels of shape ``(...,)`` when ``labels.ndim == logits.ndim - 1``:
      ``q = one_hot(labels)``, so ``L = logsumexp(z) - z_label``;
    * probability targets of shape ``(..., C)`` when ``labels.ndim == logits.ndim`` (floating
      dtype; each row should sum to 1).

    Label smoothing with ``a`` replaces ``q`` by ``(1 - a) q + a / C`` (``optax.smooth_labels``).
    Log-probabilities come from :func:`jaxnn.activations.log_softmax`, so the loss and its gradient
    ``softmax(z) - q`` are finite even for a logit gap of ``1e4``.

    Args:
      logits: unnormalized scores ``(..., C)``.
      labels: integer labels ``(...,)`` in ``[0, C)`` or probability targets ``(..., C)``.
      label_smoothing: ``a`` in ``[0, 1)``.
      reduction: ``"mean"``, ``"sum"`` or ``"none"`` (shape ``logits.shape[:-1]``).

    Returns:
      A scalar, or per-example losses for ``reduction="none"``.

    Raises:
      ValueError: on a rank that fits neither form, float labels where the rank says integer,
        a labels shape or class count that does not match ``logits``, concrete labels outside
        ``[0, C)``, no classes, no examples for ``reduction="mean"``, ``label_smoothing``
        outside ``[0, 1)`` or an unknown reduction. Labels traced
        under ``jit`` cannot be range-checked; out-of-range values then give unspecified losses.
    """
    _check_reduction("cross_entropy", reduction)
    label_smoothing = check_probability("cross_entropy", label_smoothing, "label_smoothing")
    logits = as_array("cross_entropy", logits, "logits")
    labels = as_array("cross_entropy", labels, "labels")
    check_floating_dtype("cross_entropy", logits, "logits")
    integer = _is_integer_labels("cross_entropy", logits, labels)
    _check_examples("cross_entropy", logits.shape, reduction, "classes")
    logp = log_softmax(logits, axis=-1)  # (..., C)
    num_classes = logits.shape[-1]
    if integer and label_smoothing == 0.0:
        per_example = -jnp.take_along_axis(logp, jnp.asarray(labels)[..., None], axis=-1)[..., 0]
    else:
        if integer:
            q = jax.nn.one_hot(labels, num_classes, dtype=logp.dtype)  # (..., C)
        else:
            q = jnp.asarray(labels, logp.dtype)  # (..., C)
        q = (1.0 - label_smoothing) * q + label_smoothing / num_classes
        per_example = -jnp.sum(q * logp, axis=-1)
    return _reduce(per_example, reduction)


def _log_sigmoid(x: jax.Array) -> jax.Array:
    """``log sigmoid(x) = -log(1 + e^-x)``, never exponentiating a positive number."""
    positive = x >= 0
    softplus_neg_abs = jnp.log1p(jnp.exp(jnp.where(positive, -x, x)))  # log(1 + e^-|x|)
    return jnp.where(positive, -softplus_neg_abs, x - softplus_neg_abs)


def binary_cross_entropy(
    logits: jax.Array, labels: jax.Array, *, reduction: str = "mean"
) -> jax.Array:
    """Binary cross-entropy from logits: ``L = -[y log sigmoid(z) + (1 - y) log(1 - sigmoid(z))]``.

    Chapter 4: the two-class (or multi-label) loss. Since
    ``log(1 - sigmoid(z)) = log sigmoid(z) - z`` it is computed as
    ``L = (1 - y) z - log sigmoid(z)`` with a stable log-sigmoid, so logits of ``+-1e4`` give
    finite losses and gradients ``sigmoid(z) - y``. Per example (a slice along the first axis) the
    elementwise losses are averaged; elementwise equal to ``optax.sigmoid_binary_cross_entropy``.

    Args:
      logits: ``(B, ...)``, rank >= 1.
      labels: targets in ``[0, 1]`` with the same shape (floats, or 0/1 integers or bools).
      reduction: ``"mean"``, ``"sum"`` or ``"none"`` (shape ``(B,)``).

    Returns:
      A scalar, or ``(B,)`` for ``reduction="none"``.

    Raises:
      ValueError: on rank-0 logits, mismatched shapes, concrete labels outside ``[0, 1]``, empty
        examples, no examples for ``reduction="mean"`` or an unknown reduction.
    """
    _check_reduction("binary_cross_entropy", reduction)
    logits = as_array("binary_cross_entropy", logits, "logits")
    labels = as_array("binary_cross_entropy", labels, "labels")
    check_floating_dtype("binary_cross_entropy", logits, "logits")
    check_min_rank("binary_cross_entropy", logits, 1)
    check_same_shape("binary_cross_entropy", logits, labels, "logits", "labels")
    _check_examples("binary_cross_entropy", logits.shape, reduction, "features")
    if not isinstance(labels, jax.core.Tracer):
        arr = np.asarray(labels, dtype=np.float64)
        if arr.size and (arr.min() < 0.0 or arr.max() > 1.0):
            raise ValueError(
                f"binary_cross_entropy: expected labels in [0, 1], got values in "
                f"[{arr.min()}, {arr.max()}]"
            )
    y = jnp.asarray(labels).astype(logits.dtype)
    elementwise = (1.0 - y) * logits - _log_sigmoid(logits)
    return _reduce(_mean_over_features(elementwise), reduction)


def _check_weight_decay(weight_decay):
    """``weight_decay`` as a float (or the traced array it is), once checked to be ``>= 0``."""
    is_number = isinstance(weight_decay, (int, float, np.number))
    is_number = is_number and not isinstance(weight_decay, bool)
    if is_number and weight_decay >= 0:
        return float(weight_decay)  # a Python int beyond int64 would overflow in JAX
    if isinstance(weight_decay, jax.Array) and not is_number:
        return weight_decay
    raise ValueError(f"l2_penalty: expected weight_decay >= 0, got {weight_decay!r}")


def _decayed(leaf, exclude_1d: bool) -> bool:
    """Whether ``l2_penalty`` counts ``leaf``: floating, and not a bias or scale when asked."""
    return jnp.issubdtype(leaf.dtype, jnp.floating) and not (exclude_1d and leaf.ndim <= 1)


def l2_penalty(params, weight_decay: float = 1.0, *, exclude_1d: bool = False) -> jax.Array:
    """L2 weight penalty over a pytree: ``R = weight_decay * sum_leaves sum(theta^2) / 2``.

    Chapter 13 (regularization, introduced with the loss in Chapter 4): adding ``R`` to the loss
    pulls every weight toward zero with gradient ``weight_decay * theta``; the 1/2 makes that
    gradient the same as decoupled weight decay. Equal to
    ``weight_decay * sum(optax.l2_loss(theta))`` summed over leaves.

    Biases are included by default, so the penalty is exactly the textbook ``|theta|^2`` over all
    parameters; pass ``exclude_1d=True`` to skip leaves of rank <= 1 (biases, normalization
    scales), the usual practice when decaying large models. Non-floating leaves are skipped.

    Args:
      params: any pytree of arrays.
      weight_decay: non-negative coefficient.
      exclude_1d: skip leaves with ``ndim <= 1``.

    Returns:
      A scalar (0 for a pytree with no penalized leaves).

    Raises:
      ValueError: if ``weight_decay`` is not a number, a concrete ``weight_decay`` is negative
        (or NaN), or a leaf is not numeric array data.
    """
    weight_decay = _check_weight_decay(weight_decay)
    leaves = [
        as_array("l2_penalty", leaf, "every params leaf")
        for leaf in jax.tree_util.tree_leaves(params)
    ]
    leaves = [leaf for leaf in leaves if _decayed(leaf, exclude_1d)]
    if not leaves:
        return jnp.zeros(())
    return weight_decay * jnp.asarray(sum(0.5 * jnp.sum(leaf**2) for leaf in leaves))


def accuracy(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """Classification accuracy: ``mean_i [argmax_c z_ic == y_i]``.

    Chapter 4: the metric people care about, which the loss only stands in for (high accuracy and
    high loss can coexist when correct predictions are unconfident). Not differentiable: it is a
    fraction of integer matches. Accepts the same labels as :func:`cross_entropy`; for probability
    targets the true class is their argmax. Ties in the logits go to the lowest class index.

    Args:
      logits: ``(..., C)``.
      labels: integer labels ``(...,)`` or probability targets ``(..., C)``.

    Returns:
      A float32 scalar in ``[0, 1]``.

    Raises:
      ValueError: on the same malformed labels as :func:`cross_entropy`, no classes or no
        examples.
    """
    logits = as_array("accuracy", logits, "logits")
    labels = as_array("accuracy", labels, "labels")
    integer = _is_integer_labels("accuracy", logits, labels)
    _check_examples("accuracy", logits.shape, "mean", "classes")
    labels = jnp.asarray(labels) if integer else jnp.argmax(jnp.asarray(labels), axis=-1)
    return jnp.mean((jnp.argmax(logits, axis=-1) == labels).astype(jnp.float32))
