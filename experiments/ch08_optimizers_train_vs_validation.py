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

``--quick`` trains 20 epochs instead of 60 (the same assertions).

Figure: training and validation loss, and training and validation accuracy, per epoch for each
optimizer, with the chance level and the share of correct training labels.

Run: ``python -m jaxnn.experiments.ch08_optimizers_train_vs_validation [--quick] [--out DIR]``.
"""

from __future__ import annotations

from jaxnn.experiments._common import Experiment, plt
from jaxnn.experiments._style import PALETTE, baseline_line

from jaxnn.data import corrupt, load, pipeline
from jaxnn.models import build, get_module
from jaxnn.train import FitConfig, fit

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
    model = build("mlp", get_module("mlp").config_for(splits.info, hidden=(256, 256)))
    results = {}
    for label, (name, lr, wd) in OPTIMIZERS.items():
        cfg = FitConfig(
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


def draw(exp, results):
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(13, 4.6))
    for (label, result), color in zip(results.items(), PALETTE, strict=False):
        ep = [h["epoch"] for h in result.history]
        for key, axis in (("loss", ax), ("accuracy", bx)):
            axis.plot(ep, [h[f"train_{key}"] for h in result.history], color=color, label=label)
            axis.plot(ep, [h[f"val_{key}"] for h in result.history], color=color, ls="--", lw=1.2)
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("cross-entropy (nats); train solid, val dashed")
    ax.set_title(f"Loss ({NOISE:.0%} wrong training labels)")
    ax.legend()
    baseline_line(bx, 1 - NOISE, f"correct training labels ({1 - NOISE:.0%})")
    bx.axhline(0.1, color="black", ls=":", lw=1, label="chance (10%)")
    bx.set_ylim(0, 1.02)
    bx.set_xlabel("epoch")
    bx.set_ylabel("accuracy; train (noisy labels) solid, val dashed")
    bx.set_title("Accuracy: fast training memorizes the noise")
    bx.legend(fontsize=8, loc="center right")
    exp.save(fig, "optimizers.png")


def main(argv=None) -> None:
    exp = Experiment("ch08_optimizers_train_vs_validation", CLAIM, argv)
    epochs = 20 if exp.quick else 60
    if exp.quick:
        exp.notes.append("--quick: 20 epochs instead of 60; same thresholds")
    results = train_all(epochs, seed=0)
    last = {k: r.history[-1] for k, r in results.items()}
    train_loss = {k: h["train_loss"] for k, h in last.items()}
    val_acc = {k: h["val_accuracy"] for k, h in last.items()}
    fastest = min(train_loss, key=train_loss.get)
    best_val = max(val_acc, key=val_acc.get)
    exp.record(
        epochs=epochs,
        label_noise=NOISE,
        final_train_loss=train_loss,
        final_train_accuracy={k: h["train_accuracy"] for k, h in last.items()},
        final_val_loss={k: h["val_loss"] for k, h in last.items()},
        final_val_accuracy=val_acc,
        best_val_accuracy={k: r.summary["best_val_accuracy"] for k, r in results.items()},
        fastest_training_loss=fastest,
        best_final_validation=best_val,
    )
    draw(exp, results)

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
        last[fastest]["train_accuracy"] > 1 - NOISE,
        f"{fastest} fits wrong labels: train accuracy {last[fastest]['train_accuracy']:.2f} > "
        f"{1 - NOISE:.0%} correct labels",
    )
    exp.finish()


if __name__ == "__main__":
    main()
