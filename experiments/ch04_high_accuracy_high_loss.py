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
   squared error between the softmax and the one-hot target vanishes: at least 100x smaller;
4. the loss must be differentiable: from the same initial parameters, 100 full-batch gradient
   steps on the error rate ``1 - accuracy`` (a step function of the parameters) find a gradient
   of exactly zero and leave the parameters unchanged, while the same steps on cross-entropy
   raise the training accuracy by at least 50 points.

``--quick`` trains 15 epochs instead of 40 (the same assertions).

Figure: loss and accuracy against the logit scale; the cumulative share of the loss carried by
the worst examples; both losses' gradient size on a growing mistake; training accuracy under
gradient steps on each loss. Slider: the distribution of the model's confidence at each logit
scale, correct and wrong predictions apart.

Run: ``python -m experiments.ch04_high_accuracy_high_loss [--quick] [--out DIR]``.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax

from experiments.harness import Experiment, fit_config
from experiments.style import PALETTE, baseline_line, panels, threshold_line
from jaxnn import losses
from jaxnn.data import load, pipeline
from jaxnn.models import build
from jaxnn.train import fit

CLAIM = (
    "Chapter 4: high accuracy and high loss can happen together when a few wrong predictions are "
    "extremely confident (or correct ones timid); cross-entropy keeps a large gradient on "
    "confident mistakes where squared error's vanishes; and a loss must be differentiable: "
    "gradient steps on the error rate change nothing."
)
SCALES = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0)


def val_logits(epochs: int, seed: int):
    splits, _ = pipeline.standardize(load("digits", seed=seed))
    model = build("mlp", splits.info, hidden=(128,))
    cfg = fit_config(
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


def descend_on(loss_name: str, steps: int, lr: float = 0.1, seed: int = 0) -> dict:
    """Full-batch gradient steps on ``cross_entropy`` or ``error_rate`` (1 - accuracy) from the
    same initial parameters: training accuracy per step, the first gradient's norm, and whether
    the parameters moved at all."""
    splits, _ = pipeline.standardize(load("digits", seed=seed))
    model = build("mlp", splits.info, hidden=(128,))
    params, state = model.init(jax.random.PRNGKey(seed))
    x, y = jnp.asarray(splits.train.x), jnp.asarray(splits.train.y)

    def loss(p):
        logits = model.apply(p, x, state=state)[0]  # (N, 10)
        if loss_name == "error_rate":
            return 1.0 - losses.accuracy(logits, y)
        return losses.cross_entropy(logits, y)

    def step(p, _):
        g = jax.grad(loss)(p)
        acc = losses.accuracy(model.apply(p, x, state=state)[0], y)
        return jax.tree.map(lambda a, b: a - lr * b, p, g), (acc, optax.global_norm(g))

    final, (acc, norms) = jax.jit(lambda p: jax.lax.scan(step, p, None, length=steps))(params)
    pairs = zip(jax.tree.leaves(final), jax.tree.leaves(params), strict=True)
    moved = max(float(jnp.abs(a - b).max()) for a, b in pairs)
    return {"accuracy": np.asarray(acc).tolist(), "first_grad_norm": float(norms[0]),
            "max_grad_norm": float(norms.max()), "max_param_change": moved}  # fmt: skip


def draw(exp, scale_rows, per_example, wrong, grads, descent):
    figs, (ax, bx, cx, dx) = panels(4)
    ax.plot(SCALES, scale_rows["loss"], marker="o", color=PALETTE[1], label="validation loss")
    baseline_line(ax, math.log(10), "uniform guess: ln 10")
    threshold_line(ax, 0.9 * math.log(10), "asserted at s=0.01: >= 0.9 ln 10")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("logit scale s (predictions unchanged)")
    ax.set_ylabel("cross-entropy (nats)")
    acc = scale_rows["accuracy"]
    same = f"{acc[0]:.1%} at every s" if len(set(acc)) == 1 else "varies"
    ax.set_title(f"Same predictions (accuracy {same})")
    ax.set_ylim(0.5 * min(scale_rows["loss"]), 40 * max(scale_rows["loss"][0], math.log(10)))
    ax.legend(loc="upper left")

    order = np.argsort(per_example)[::-1]
    share = np.cumsum(per_example[order]) / per_example.sum()
    frac = np.arange(1, len(order) + 1) / len(order)
    bx.plot(frac, share, color=PALETTE[1], label="cumulative share of loss")
    k = int(wrong.sum())
    bx.axvline(k / len(order), color=PALETTE[0], linestyle="--", label=f"{k} misclassified")
    bx.set_xscale("log")
    bx.set_xlabel("fraction of examples, worst first")
    bx.set_ylabel("share of total loss")
    bx.set_title("A few confident errors dominate")
    bx.legend(loc="lower right")

    for name, marker in (("cross_entropy", "o"), ("squared_error", "s")):
        cx.plot(grads["p_true"], grads[name], marker=marker, label=name.replace("_", " "))
    threshold_line(cx, 1.0, "asserted: cross-entropy >= 1")
    cx.set_xscale("log")
    cx.set_yscale("log")
    cx.invert_xaxis()
    cx.set_xlabel("p(true class), mistake grows ->")
    cx.set_ylabel("gradient norm w.r.t. logits")
    cx.set_title("Who learns from a confident mistake")
    cx.legend(loc="lower left")

    for name, label in (("cross_entropy", "cross-entropy"), ("error_rate", "1 - accuracy")):
        dx.plot(descent[name]["accuracy"], label=f"steps on {label}")
    dx.set_ylim(0, 1.05)
    dx.set_xlabel("full-batch gradient step")
    dx.set_ylabel("training accuracy")
    dx.set_title("A step function gives no gradient")
    dx.legend(loc="center right")
    exp.save(
        figs,
        "accuracy_vs_loss.png",
        caption="Scaling the logits leaves the accuracy flat while the loss swings on both sides "
        "of ln 10; a handful of wrong answers holds most of the loss; cross-entropy's gradient "
        "stays large on a confident mistake; and the error rate, not differentiable, teaches "
        "nothing.",
        alt=[
            "Validation loss against the logit scale, V-shaped: near ln 10 for tiny scales, "
            "lowest at scale 1, above ln 10 for large scales; the accuracy is the same at all.",
            "Cumulative share of the loss against the fraction of examples sorted worst first: "
            "the misclassified few carry most of it.",
            "Gradient norms of cross-entropy and squared error as a mistake grows more "
            "confident: cross-entropy's stays near 1.4, squared error's falls toward zero.",
            "Training accuracy per gradient step: rising under cross-entropy, flat at its "
            "starting value under 1 - accuracy.",
        ],
    )


def draw_confidence_slider(exp, logits, labels):
    """One frame per logit scale: the distribution of the top-class probability."""
    frames, axes = panels(len(SCALES))
    bins = np.linspace(0, 1, 21)
    for s, ax in zip(SCALES, axes, strict=True):
        z = s * logits
        conf = np.asarray(jax.nn.softmax(z).max(-1))
        right = z.argmax(-1) == labels
        loss = float(losses.cross_entropy(z, labels))
        ax.hist(conf[right], bins, color=PALETTE[0], label=f"correct ({right.sum()})")
        ax.hist(conf[~right], bins, color=PALETTE[1], label=f"wrong ({(~right).sum()})")
        ax.set_yscale("log")
        ax.set_xlim(0, 1)
        ax.set_ylim(0.5, len(labels))
        ax.set_xlabel("confidence: top-class probability")
        ax.set_ylabel("validation examples")
        ax.set_title(f"s = {s:g}: loss {loss:.3f} nats, accuracy {right.mean():.1%}")
        ax.legend(loc="upper center")
    exp.slider(
        "logit_scale",
        "logit scale s",
        list(SCALES),
        frames,
        caption="The same predictions at every scale: small s makes every answer timid (near "
        "0.1), large s makes the wrong ones as sure as the right ones, and the loss follows.",
        alt=[
            f"Histogram of the top-class probability at logit scale {s:g}, correct and wrong "
            "predictions apart."
            for s in SCALES
        ],
        initial=SCALES.index(1.0),
    )


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
    descent = {name: descend_on(name, steps=100) for name in ("cross_entropy", "error_rate")}
    exp.record(
        descent_steps=100,
        error_rate_first_grad_norm=descent["error_rate"]["first_grad_norm"],
        error_rate_max_param_change=descent["error_rate"]["max_param_change"],
        cross_entropy_first_grad_norm=descent["cross_entropy"]["first_grad_norm"],
        train_accuracy_start=descent["cross_entropy"]["accuracy"][0],
        train_accuracy_after_cross_entropy=descent["cross_entropy"]["accuracy"][-1],
        train_accuracy_after_error_rate=descent["error_rate"]["accuracy"][-1],
    )
    draw(exp, scale_rows, per_example, wrong, grads, descent)
    draw_confidence_slider(exp, logits, labels)

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
    ce, zero_one = descent["cross_entropy"], descent["error_rate"]
    exp.check(
        zero_one["max_grad_norm"] == 0.0 and zero_one["max_param_change"] == 0.0,
        "the error rate (1 - accuracy) has a zero gradient: 100 steps on it leave every "
        "parameter exactly where it started",
    )
    exp.check(
        ce["accuracy"][-1] >= ce["accuracy"][0] + 0.5,
        f"the same steps on cross-entropy raise the training accuracy from "
        f"{ce['accuracy'][0]:.2f} to {ce['accuracy'][-1]:.2f} (>= 50 points)",
    )
    exp.finish()


if __name__ == "__main__":
    main()
