"""Diagnostics — Chapter 14: the common failure modes, as functions that detect them.

"Neural networks fail in predictable ways that are often diagnosable." Each function here looks at
what a run leaves behind (per-epoch history, gradients, per-example losses, the data itself) and
returns a verdict with the numbers behind it. Every threshold is a keyword argument.

- :func:`fit_diagnosis`: underfitting, overfitting or healthy, from ``fit``'s history;
  :func:`divergence_report`: a run the divergence guard stopped, or with a non-finite loss
  (:mod:`~jaxnn.diagnostics.curves`).
- :func:`layer_grad_norms`, :func:`gradient_health`: vanishing and exploding gradients
  (:mod:`~jaxnn.diagnostics.gradients`).
- :func:`suspicious_labels`: the examples a trained model finds hardest (mislabeled candidates);
  :func:`class_balance`: under-represented classes; :func:`label_signal`: labels that the inputs
  do not predict at all (shuffled labels); :func:`class_report`: per-class precision and recall,
  classes the model ignores (:mod:`~jaxnn.diagnostics.labels`).
- :func:`feature_shift`, :func:`distribution_shift`: inputs that differ from the training
  inputs; :func:`label_correlation`, :func:`spurious_feature_check`: a feature that predicts the
  label in training much better than in test (a shortcut); :func:`leakage_check`: exact and
  near duplicates across train, validation and test (:mod:`~jaxnn.diagnostics.data`).
- :func:`overfit_tiny_batch`: "verify that loss decreases on a tiny subset of examples";
  :func:`lr_range_test`: a learning rate too high or too low, from one exponential sweep and a
  short run at the rate itself; :func:`learning_signal`: whether the model, briefly trained,
  beats chance on validation (the label probe for images) (:mod:`~jaxnn.diagnostics.training`).
- :func:`activation_report`: dead ReLUs, saturated sigmoid and tanh units, per layer
  (:mod:`~jaxnn.diagnostics.activations`).
- :func:`find_nonfinite`: the first op (and layer) that produced a NaN or infinity, and the
  examples that trigger it (:mod:`~jaxnn.diagnostics.nonfinite`).

The array-valued functions (:func:`layer_grad_norms`, :func:`suspicious_labels`,
:func:`feature_shift`, :func:`label_correlation`) are pure ``jax.numpy`` and compose with ``jit``.
Every other detector returns a :class:`Report` (:mod:`~jaxnn.diagnostics.report`), a frozen
dataclass with the ``verdict``, ``ok`` (the verdict names no problem), a one-line ``message``,
the ``evidence`` (its other fields: the numbers behind the verdict) and ``to_json()``.

The checklist that runs them in the book's order and ranks what they find is
:mod:`jaxnn.diagnostics.doctor` (the engine of ``jaxnn doctor``).

How intermediates are read. :func:`activation_report` and :func:`find_nonfinite` need the
outputs of the layers inside ``model.apply`` without changing the models. They trace
``model.apply`` (or the loss around it) with ``jax.make_jaxpr`` and evaluate the jaxpr one
equation at a time (:mod:`~jaxnn.diagnostics.interpreter`), recording the outputs of
``dot_general``/``conv_general_dilated`` (the layers, named after the parameter they multiply)
and of the equations that compute an activation (``logistic``, ``tanh``, or an output equal to
``relu(x)``/``sigmoid(x)`` of an input or of the operand of the comparison that feeds a
``where``). This needs no hook in the models, works for any function written in ``jax.numpy``
(a user's own model or loss included), and sees every primitive, so the first NaN is located at
the op that made it. An ``intermediates`` output, or a ``jax.debug.callback`` per layer, would
need a change in every model. The price: the evaluation is eager (slow for big models; use a
small batch), and the inside of ``lax.scan``/``while_loop`` bodies (a recurrent cell) is
evaluated as one step.
"""

from jaxnn.diagnostics.activations import ActivationReport, LayerActivation, activation_report
from jaxnn.diagnostics.curves import DivergenceReport, FitReport, divergence_report, fit_diagnosis
from jaxnn.diagnostics.data import (
    LeakageReport,
    ShiftReport,
    SpuriousReport,
    distribution_shift,
    feature_shift,
    label_correlation,
    leakage_check,
    spurious_feature_check,
)
from jaxnn.diagnostics.gradients import GradientReport, gradient_health, layer_grad_norms
from jaxnn.diagnostics.labels import (
    BalanceReport,
    ClassReport,
    LabelSignalReport,
    class_balance,
    class_report,
    label_signal,
    suspicious_labels,
)
from jaxnn.diagnostics.nonfinite import NonfiniteReport, find_nonfinite
from jaxnn.diagnostics.report import Report, jsonable
from jaxnn.diagnostics.training import (
    LearningSignalReport,
    LRRangeReport,
    OverfitReport,
    learning_signal,
    lr_range_test,
    overfit_tiny_batch,
)

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
    "learning_signal",
    "divergence_report",
    "activation_report",
    "find_nonfinite",
    "class_report",
    "jsonable",
    "Report",
    "FitReport",
    "GradientReport",
    "BalanceReport",
    "ShiftReport",
    "SpuriousReport",
    "LabelSignalReport",
    "LeakageReport",
    "OverfitReport",
    "LRRangeReport",
    "LearningSignalReport",
    "DivergenceReport",
    "LayerActivation",
    "ActivationReport",
    "NonfiniteReport",
    "ClassReport",
]
