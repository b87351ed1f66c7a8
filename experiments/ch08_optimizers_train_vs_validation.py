"""Chapter 8: a faster optimizer lowers the training loss sooner, which is not better validation.

The book's claim: momentum accumulates the update direction, and Adam adapts the step size per
parameter from estimates of the gradient's first and second moments, so it often works well with
little tuning; but a better optimizer does not guarantee better generalization: it may reduce
training loss faster, while validation performance also depends on the data, the model size and
regularization.

Measured here: an MLP ``64-256-256-10`` on the 8x8 ``digits`` images with 40% of the training
labels replaced by wrong ones (:func:`jaxnn.data.corrupt.label_noise`; the validation labels stay
clean), trained by ``fit`` for the same epochs and batch size with SGD (lr 0.02), momentum
(0.9, lr 0.02), Adam (lr 1e-3) and AdamW (lr 1e-3, decoupled weight decay 0.1). Asserted:

1. the optimizer with the lowest final training loss is not the one with the best final
   validation accuracy;
2. that fastest optimizer's training loss is at most half of SGD's, yet its final validation
   accuracy is at least 10 points below SGD's;
3. it has fit wrong labels: its training accuracy on the noisy labels exceeds the 60% of them
   that are right.

The validation *loss* tells a milder story (all optimizers end within a few tenths of a nat; the
numbers are in ``metrics.json``): the wrong labels cost accuracy on clean examples first.

Every optimizer gets the same budget, 20 epochs; the numbers are means over five seeds (the
seed moves the initialization, the batch order, the validation split and the wrong labels).
``--quick`` runs one seed (the same assertions). The claim is about a fixed budget: trained much
longer, SGD memorizes the wrong labels as well and the optimizers end up alike.

Figure: training and validation loss, and training and validation accuracy, per epoch for each
optimizer, with the chance level and the share of correct training labels; each optimizer's final
validation accuracy against the asserted threshold.

Run: ``python -m experiments.ch08_optimizers_train_vs_validation [--quick] [--out DIR]``.
"""

from __future__ import annotations

import numpy as np

from experiments.harness import Experiment, fit_config
from experiments.style import (
    BASELINE,
    PALETTE,
    baseline_line,
    legend_below,
    panels,
    split_legend,
    threshold_line,
    train_val,
)
from jaxnn.data import corrupt, load, pipeline
from jaxnn.models import build
from jaxnn.train import fit

CLAIM = (
    "Chapter 8: a better optimizer does not guarantee better generalization: the one that lowers "
    "the training loss fastest is not the one with the best validation accuracy."
)
NOISE = 0.4
OPTIMIZERS = {  # label: (fit optimizer name, learning rate, weight decay)
    "SGD": ("sgd", 0.02, 0.0),
    "momentum 0.9": ("momentum", 0.02, 0.0),
    "Adam": ("adam", 1e-3, 0.0),
    "AdamW (wd 0.1)": ("adamw", 1e-3, 0.1),
}


def train_all(epochs: int, seed: int) -> dict:
    splits, _ = pipeline.standardize(load("digits", seed=seed))
    noisy, _ = corrupt.label_noise(splits.train, NOISE, num_classes=10, seed=seed)
    splits = splits.replace(train=noisy)
    model = build("mlp", splits.info, hidden=(256, 256))
    results = {}
    for label, (name, lr, wd) in OPTIMIZERS.items():
        cfg = fit_config(
            epochs=epochs,
            batch_size=32,
            lr=lr,
            optimizer=name,
            weight_decay=wd,
            seed=seed,
            progress=False,
            checkpoint=False,
        )
        results[label] = fit(model, splits, cfg, verbose=False)
    return results


def mean_curve(runs: list, key: str) -> np.ndarray:
    """``key`` per epoch averaged over the seeds' histories."""
    return np.mean([[h[key] for h in r.history] for r in runs], axis=0)


def draw(exp, results, n_seeds: int, final: dict, fastest: str, best_val: str):
    figs, (ax, bx, cx) = panels(3, size=(4.2, 4.4))
    for (label, runs), color in zip(results.items(), PALETTE, strict=False):
        ep = np.arange(1, len(runs[0].history) + 1)
        for key, axis in (("loss", ax), ("accuracy", bx)):
            train_val(axis, ep, mean_curve(runs, f"train_{key}"), mean_curve(runs, f"val_{key}"),
                      color=color, label=label)  # fmt: skip
    seeds = "one seed" if n_seeds == 1 else f"mean of {n_seeds} seeds"
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("cross-entropy (nats)")
    ax.set_title(f"Loss ({seeds})")
    split_legend(ax, below=True)
    baseline_line(bx, 1 - NOISE, f"correct train labels ({1 - NOISE:.0%})")
    bx.axhline(0.1, color=BASELINE, ls="--", lw=1, label="chance (10%)")
    bx.set_ylim(0, 1.02)
    bx.set_xlabel("epoch")
    bx.set_ylabel("accuracy (train: noisy labels)")
    bx.set_title(f"Accuracy ({NOISE:.0%} wrong train labels)")
    legend_below(bx)
    names = list(results)
    pos = np.arange(len(names))
    bars = cx.bar(pos, [final["val_accuracy"][k] for k in names],
                  color=[PALETTE[i] for i in range(len(names))])  # fmt: skip
    cx.bar_label(bars, fmt="%.2f")
    threshold_line(cx, final["val_accuracy"]["SGD"] - 0.10,
                   f"asserted: {fastest} <= SGD - 10 points")  # fmt: skip
    cx.set_xticks(pos, [n.replace(" (", "\n(") for n in names])
    cx.set_ylim(0, 1.1)
    cx.set_ylabel("final validation accuracy")
    cx.set_title(f"Fastest to train: {fastest}")
    legend_below(cx, ncols=1)
    exp.save(
        figs,
        "optimizers.png",
        caption=f"{fastest} drives the training loss lowest, fitting the wrong labels too, and "
        f"ends {final['val_accuracy']['SGD'] - final['val_accuracy'][fastest]:.0%} below SGD in "
        f"validation accuracy; {best_val} validates best.",
        alt=[
            "Training (solid) and validation (dashed) loss per epoch for SGD, momentum, Adam and "
            "AdamW: the fast optimizers' training loss falls far below SGD's.",
            "Training and validation accuracy per epoch: the fast optimizers' training accuracy "
            "passes the 60% of correct labels while their validation accuracy falls.",
            "Bars of final validation accuracy per optimizer, with the asserted threshold ten "
            "points under SGD's.",
        ],
    )


def main(argv=None) -> None:
    exp = Experiment("ch08_optimizers_train_vs_validation", CLAIM, argv)
    epochs, seeds = (20, (0,)) if exp.quick else (20, (0, 1, 2, 3, 4))
    if exp.quick:
        exp.notes.append("--quick: one seed instead of five; same epochs and thresholds")
    per_seed = [train_all(epochs, seed) for seed in seeds]
    results = {k: [runs[k] for runs in per_seed] for k in OPTIMIZERS}
    final = {
        key: {k: float(mean_curve(runs, key)[-1]) for k, runs in results.items()}
        for key in ("train_loss", "train_accuracy", "val_loss", "val_accuracy")
    }
    train_loss, val_acc = final["train_loss"], final["val_accuracy"]
    fastest = min(train_loss, key=train_loss.get)
    best_val = max(val_acc, key=val_acc.get)
    exp.record(
        epochs=epochs,
        seeds=list(seeds),
        label_noise=NOISE,
        final_train_loss=train_loss,
        final_train_accuracy=final["train_accuracy"],
        final_val_loss=final["val_loss"],
        final_val_accuracy=val_acc,
        final_val_accuracy_per_seed={
            k: [r.history[-1]["val_accuracy"] for r in runs] for k, runs in results.items()
        },
        fastest_training_loss=fastest,
        best_final_validation=best_val,
    )
    draw(exp, results, len(seeds), final, fastest, best_val)

    exp.check(
        fastest != best_val,
        f"the lowest training loss ({fastest}) is not the best validation accuracy ({best_val})",
    )
    exp.check(
        train_loss[fastest] <= 0.5 * train_loss["SGD"]
        and val_acc[fastest] <= val_acc["SGD"] - 0.10,
        f"{fastest} trains to <= half SGD's loss ({train_loss[fastest]:.3f} vs "
        f"{train_loss['SGD']:.3f}) yet validates >= 10 points worse ({val_acc[fastest]:.3f} vs "
        f"{val_acc['SGD']:.3f})",
    )
    exp.check(
        final["train_accuracy"][fastest] > 1 - NOISE,
        f"{fastest} fits wrong labels: train accuracy {final['train_accuracy'][fastest]:.2f} > "
        f"{1 - NOISE:.0%} correct labels",
    )
    exp.finish()


if __name__ == "__main__":
    main()
