"""Chapter 1: a network is a parameterized function; wider ones fit better, and can memorize.

The book's claim: a neural network learns a parameterized function that maps inputs to desired
outputs; it stores parameters that shape a function rather than the training examples, though
overly large models can memorize data.

Measured here, with ``fit`` and ``jaxnn.models.build("mlp", ...)``:

1. **Approximation.** A one-hidden-layer ReLU MLP ``1-w-1`` (a piecewise-linear function with
   ``w`` kinks) regresses ``y = sin x + noise`` (``synthetic:sine``, noise 0.1, so the best
   possible mean squared error is 0.01). The validation error falls as the width ``w`` grows: the
   widest net's error is at most a fifth of the width-1 net's and within 3x of the noise floor.
2. **Memorization.** A wide MLP ``64-512-512-10`` trained on 8x8 ``digits`` images whose labels
   are replaced by uniformly random ones (there is no function to learn) reaches 100% training
   accuracy, while on the other training images (with their own random labels, about 1,000 of
   them) its final parameters score at chance, 10% (asserted at most 15%). The same images with
   their true labels give a validation accuracy at least 30 points higher, so the gap is the
   labels', not the inputs'.

``--quick`` uses 500 sine points, widths 1, 4 and 32, 300 memorized images and fewer epochs (the
same assertions).

Figure: the fitted curves by width, validation error against width (log-log) with the noise floor,
and train/validation accuracy per epoch under random labels with the chance line.

Run: ``python -m experiments.ch01_function_approximation [--quick] [--out DIR]``.
"""

from __future__ import annotations

import numpy as np

from experiments.harness import Experiment, plt
from experiments.style import TRAIN, VAL, baseline_line
from jaxnn.data import Dataset, load, pipeline
from jaxnn.models import build, get
from jaxnn.train import FitConfig, evaluate, fit

CLAIM = (
    "Chapter 1: a network learns a parameterized function (its approximation error falls as it "
    "grows wider), yet an overly large model can memorize data: random labels reach 100% "
    "training accuracy and stay at chance on validation."
)
NOISE = 0.1


def width_sweep(widths, n: int, epochs: int, seed: int) -> tuple[dict, object]:
    """Validation MSE and the fitted model of a ``1-w-1`` ReLU MLP for each width ``w``."""
    splits = load("synthetic:sine", seed=seed, n=n, noise=NOISE)
    cfg = FitConfig(
        epochs=epochs,
        batch_size=16,
        lr=1e-2,
        monitor="val_loss",
        seed=seed,
        progress=False,
        checkpoint=False,
    )
    runs = {}
    for w in widths:
        cfg_w = get("mlp").config_for(splits.info, hidden=(w,), activation="relu")
        model = build("mlp", cfg_w)
        runs[w] = (model, fit(model, splits, cfg, verbose=False))
    return runs, splits


def random_label_splits(n_train: int, seed: int):
    """Digits: the first ``n_train`` training images to train, the rest to validate.

    Returns ``(true-label splits, random-label splits)`` over the same images.
    """
    splits, _ = pipeline.standardize(load("digits", seed=seed))
    pool = splits.train
    splits = splits.replace(
        train=pool.take(range(n_train)), val=pool.take(range(n_train, len(pool)))
    )
    rng = np.random.default_rng(seed)
    k = splits.info.num_classes
    shuffled = splits.replace(
        train=Dataset(splits.train.x, rng.integers(0, k, len(splits.train)).astype(np.int32)),
        val=Dataset(splits.val.x, rng.integers(0, k, len(splits.val)).astype(np.int32)),
    )
    return splits, shuffled


def memorize(splits, epochs: int, seed: int) -> dict:
    """Train a wide MLP; accuracy of its *final* parameters on train and validation."""
    model = build("mlp", splits.info, hidden=(512, 512))
    cfg = FitConfig(
        epochs=epochs, batch_size=50, lr=1e-3, seed=seed, progress=False, checkpoint=False
    )
    result = fit(model, splits, cfg, verbose=False)
    params, state = result.state.params, result.state.model_state
    return {
        "train_accuracy": evaluate(model, params, state, splits.train)["accuracy"],
        "val_accuracy": evaluate(model, params, state, splits.val)["accuracy"],
        "history": result.history,
    }


def draw(exp, runs, splits, mse, memo, chance):
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.3))
    x = np.linspace(-np.pi, np.pi, 300, dtype=np.float32)[:, None]  # (300, 1)
    axes[0].scatter(splits.train.x[:, 0], splits.train.y[:, 0], s=4, color="#bbbbbb", label="train")
    axes[0].plot(x[:, 0], np.sin(x[:, 0]), color="black", linestyle=":", label="sin x")
    for w, (model, result) in runs.items():
        y, _ = model.apply(result.best_params, x, state=result.best_model_state)
        axes[0].plot(x[:, 0], np.asarray(y)[:, 0], label=f"width {w}")
    axes[0].set_xlabel("input x")
    axes[0].set_ylabel("prediction y")
    axes[0].set_title("The learned function, by width")
    axes[0].legend(fontsize=8, ncols=2)
    widths = list(runs)
    axes[1].plot(widths, mse, marker="o", color=VAL, label="validation MSE")
    baseline_line(axes[1], NOISE**2, f"noise floor {NOISE**2:g}")
    axes[1].set_xscale("log", base=2)
    axes[1].set_yscale("log")
    axes[1].set_xlabel("hidden width (units)")
    axes[1].set_ylabel("mean squared error")
    axes[1].set_title("Wider approximates better")
    axes[1].legend()
    hist = memo["history"]
    epochs = [h["epoch"] for h in hist]
    axes[2].plot(epochs, [h["train_accuracy"] for h in hist], color=TRAIN, label="train")
    axes[2].plot(epochs, [h["val_accuracy"] for h in hist], color=VAL, ls="--", label="validation")
    baseline_line(axes[2], chance, f"chance {chance:.0%}")
    axes[2].set_ylim(0, 1.05)
    axes[2].set_xlabel("epoch")
    axes[2].set_ylabel("accuracy (random labels)")
    axes[2].set_title("A big network memorizes noise")
    axes[2].legend()
    exp.save(fig, "approximation_and_memorization.png")


def main(argv=None) -> None:
    exp = Experiment("ch01_function_approximation", CLAIM, argv)
    if exp.quick:
        widths, n, sine_epochs, n_train, mem_epochs = (1, 4, 32), 500, 40, 300, 40
        exp.notes.append("--quick: 500 sine points, widths 1, 4, 32, 300 memorized images")
    else:
        widths, n, sine_epochs = (1, 2, 4, 8, 16, 32, 64, 128), 2000, 100
        n_train, mem_epochs = 800, 100
    runs, sine = width_sweep(widths, n, sine_epochs, seed=0)
    mse = [r.summary["best_val_loss"] for _, r in runs.values()]
    true_splits, random_splits = random_label_splits(n_train, seed=0)
    memo = memorize(random_splits, mem_epochs, seed=0)
    control = memorize(true_splits, mem_epochs, seed=0)
    chance = 1.0 / random_splits.info.num_classes
    exp.record(
        widths=list(widths),
        val_mse_by_width=mse,
        noise_floor=NOISE**2,
        memorized_examples=n_train,
        random_labels_train_accuracy=memo["train_accuracy"],
        random_labels_val_accuracy=memo["val_accuracy"],
        true_labels_val_accuracy=control["val_accuracy"],
        chance=chance,
    )
    draw(exp, runs, sine, mse, memo, chance)

    exp.check(
        mse[-1] <= mse[0] / 5 and mse[-1] <= 3 * NOISE**2,
        f"validation MSE falls with width: {mse[0]:.3f} at width 1 -> {mse[-1]:.4f} at "
        f"width {widths[-1]} (<= a fifth, and <= 3x the noise floor {NOISE**2:g})",
    )
    exp.check(memo["train_accuracy"] == 1.0, "random labels are memorized: 100% train accuracy")
    exp.check(
        memo["val_accuracy"] <= 1.5 * chance,
        f"random labels stay at chance on validation ({memo['val_accuracy']:.3f} <= "
        f"{1.5 * chance:g})",
    )
    exp.check(
        control["val_accuracy"] >= memo["val_accuracy"] + 0.3,
        "the same inputs with true labels generalize (>= 30 points above random labels)",
    )
    exp.finish()


if __name__ == "__main__":
    main()
