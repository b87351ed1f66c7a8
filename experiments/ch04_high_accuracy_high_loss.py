"""Chapter 4: accuracy and loss can disagree; cross-entropy punishes confident mistakes.

The book's claim: high accuracy and high loss can happen together, if correct predictions are made
with low confidence or a few wrong predictions are extremely confident. Cross-entropy is the
classification loss that penalizes a low probability on the true class; mean squared error is a
regression loss.

Measured here with an MLP ``64-128-10`` trained by ``fit`` on the 8x8 ``digits`` images, scored on
the validation split with :func:`jaxnn.losses.cross_entropy` and :func:`jaxnn.losses.accuracy`:

1. the few misclassified examples (at most 10% of them) each carry on average at least 10x the
   loss of a correctly classified one (their share of the total loss is reported);
2. multiplying the logits by ``s > 0`` changes no prediction (accuracy identical for every
   ``s``) yet moves the loss: the confident version (``s = 100``) loses more than ``ln 10``, the
   loss of a uniform guess, and the timid one (``s = 0.01``) at least 90% of it, both at >= 90%
   accuracy;
3. on a confident mistake (probability of the true class ``p <= 1e-4``) the gradient of
   cross-entropy with respect to the logits stays near ``sqrt 2`` (>= 1), while that of the
   squared error between the softmax and the one-hot target vanishes: at least 100x smaller.

``--quick`` trains 15 epochs instead of 40 (the same assertions).

Figure: loss and accuracy against the logit scale, the cumulative share of the loss carried by
the worst examples, and both losses' gradient size on a growing mistake.

Run: ``python -m experiments.ch04_high_accuracy_high_loss [--quick] [--out DIR]``.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from experiments.harness import Experiment, plt
from experiments.style import PALETTE, baseline_line
from jaxnn import losses
from jaxnn.data import load, pipeline
from jaxnn.models import build
from jaxnn.train import FitConfig, fit

CLAIM = (
    "Chapter 4: high accuracy and high loss can happen together when a few wrong predictions are "
    "extremely confident (or correct ones timid); cross-entropy keeps a large gradient on "
    "confident mistakes where squared error's vanishes."
)
SCALES = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0)


def val_logits(epochs: int, seed: int):
    splits, _ = pipeline.standardize(load("digits", seed=seed))
    model = build("mlp", splits.info, hidden=(128,))
    cfg = FitConfig(
        epochs=epochs, batch_size=32, lr=1e-3, seed=seed, progress=False, checkpoint=False
    )
    result = fit(model, splits, cfg, verbose=False)
    logits, _ = model.apply(result.best_params, splits.val.x, state=result.best_model_state)
    return np.asarray(logits), np.asarray(splits.val.y)  # (N, 10), (N,)


def gradient_sizes(margins) -> dict:
    """Gradient norms w.r.t. the logits for a mistake of growing confidence (true class 0)."""

    def logits_for(m):
        return jnp.zeros(10).at[1].set(m)[None, :]  # (1, 10): class 1 ahead by m

    target = jnp.zeros((1, 10)).at[0, 0].set(1.0)  # (1, 10)
    ce = jax.grad(lambda z: losses.cross_entropy(z, jnp.array([0])))
    se = jax.grad(lambda z: losses.mse(jax.nn.softmax(z), target))
    rows = {"p_true": [], "cross_entropy": [], "squared_error": []}
    for m in margins:
        z = logits_for(m)
        rows["p_true"].append(float(jax.nn.softmax(z)[0, 0]))
        rows["cross_entropy"].append(float(jnp.linalg.norm(ce(z))))
        rows["squared_error"].append(float(jnp.linalg.norm(se(z))))
    return rows


def draw(exp, scale_rows, per_example, wrong, grads):
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.3))
    ax = axes[0]
    ax.plot(SCALES, scale_rows["loss"], marker="o", color=PALETTE[1], label="validation loss")
    baseline_line(ax, math.log(10), "uniform guess: ln 10")
    ax.set_xscale("log")
    ax.set_xlabel("logit scale s (predictions unchanged)")
    ax.set_ylabel("cross-entropy (nats)")
    ax.set_title("Same predictions, different loss")
    acc_ax = ax.twinx()
    acc_ax.plot(SCALES, scale_rows["accuracy"], marker="s", color=PALETTE[0], label="accuracy")
    acc_ax.set_ylim(0, 1.05)
    acc_ax.set_ylabel("validation accuracy")
    acc_ax.grid(False)
    lines = ax.get_legend_handles_labels()
    more = acc_ax.get_legend_handles_labels()
    ax.legend(lines[0] + more[0], lines[1] + more[1], loc="center left")

    order = np.argsort(per_example)[::-1]
    share = np.cumsum(per_example[order]) / per_example.sum()
    frac = np.arange(1, len(order) + 1) / len(order)
    axes[1].plot(frac, share, color=PALETTE[1], label="cumulative share of loss")
    k = int(wrong.sum())
    axes[1].axvline(k / len(order), color=PALETTE[0], linestyle="--", label=f"{k} misclassified")
    axes[1].set_xlabel("fraction of validation examples (worst first)")
    axes[1].set_ylabel("share of total loss")
    axes[1].set_title("A few confident errors dominate")
    axes[1].legend(loc="lower right")

    for name, marker in (("cross_entropy", "o"), ("squared_error", "s")):
        axes[2].plot(grads["p_true"], grads[name], marker=marker, label=name.replace("_", "-"))
    axes[2].set_xscale("log")
    axes[2].set_yscale("log")
    axes[2].invert_xaxis()
    axes[2].set_xlabel("probability of the true class (more confident mistake ->)")
    axes[2].set_ylabel("gradient norm w.r.t. logits")
    axes[2].set_title("Who still learns from a confident mistake")
    axes[2].legend()
    exp.save(fig, "accuracy_vs_loss.png")


def main(argv=None) -> None:
    exp = Experiment("ch04_high_accuracy_high_loss", CLAIM, argv)
    epochs = 15 if exp.quick else 40
    if exp.quick:
        exp.notes.append("--quick: 15 training epochs instead of 40; same thresholds")
    logits, labels = val_logits(epochs, seed=0)
    per_example = np.asarray(losses.cross_entropy(logits, labels, reduction="none"))  # (N,)
    wrong = logits.argmax(-1) != labels
    scale_rows = {"loss": [], "accuracy": []}
    for s in SCALES:
        scale_rows["loss"].append(float(losses.cross_entropy(s * logits, labels)))
        scale_rows["accuracy"].append(float(losses.accuracy(s * logits, labels)))
    grads = gradient_sizes(np.linspace(0.0, 20.0, 11))
    confident = [i for i, p in enumerate(grads["p_true"]) if p <= 1e-4]
    ratio = min(grads["cross_entropy"][i] / grads["squared_error"][i] for i in confident)
    exp.record(
        epochs=epochs,
        val_examples=len(labels),
        val_accuracy=float(1 - wrong.mean()),
        val_loss=float(per_example.mean()),
        misclassified=int(wrong.sum()),
        loss_share_of_misclassified=float(per_example[wrong].sum() / per_example.sum()),
        mean_loss_wrong_over_right=float(per_example[wrong].mean() / per_example[~wrong].mean()),
        logit_scales=list(SCALES),
        loss_by_scale=scale_rows["loss"],
        accuracy_by_scale=scale_rows["accuracy"],
        p_true=grads["p_true"],
        grad_norm_cross_entropy=grads["cross_entropy"],
        grad_norm_squared_error=grads["squared_error"],
        min_grad_ratio_when_confidently_wrong=ratio,
    )
    draw(exp, scale_rows, per_example, wrong, grads)

    acc, share = exp.metrics["val_accuracy"], exp.metrics["loss_share_of_misclassified"]
    heavier = exp.metrics["mean_loss_wrong_over_right"]
    exp.check(acc >= 0.9, f"the model is accurate: validation accuracy {acc:.3f} >= 0.9")
    exp.check(
        wrong.mean() <= 0.1 and heavier >= 10,
        f"the {int(wrong.sum())} misclassified examples ({wrong.mean():.1%}) each carry >= 10x the "
        f"loss of a correct one (x{heavier:.0f}; {share:.0%} of the total)",
    )
    exp.check(
        len(set(scale_rows["accuracy"])) == 1,
        "scaling the logits leaves the accuracy unchanged",
    )
    exp.check(
        scale_rows["loss"][-1] > math.log(10) and scale_rows["loss"][0] >= 0.9 * math.log(10),
        "the confident version (s=100) loses more than a uniform guess (ln 10), the timid one "
        "(s=0.01) at least 90% of it",
    )
    exp.check(
        bool(confident) and min(grads["cross_entropy"][i] for i in confident) >= 1 and ratio >= 100,
        f"on confident mistakes cross-entropy's gradient stays >= 1 and >= 100x squared "
        f"error's (min ratio {ratio:.0f})",
    )
    exp.finish()


if __name__ == "__main__":
    main()
