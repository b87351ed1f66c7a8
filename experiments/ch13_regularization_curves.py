"""Chapter 13: more data, dropout, weight decay and augmentation each generalize better; capacity
trades underfitting against overfitting.

The book's claims: "Regularization methods reduce this risk: dropout randomly masks activations
during training, data augmentation creates realistic variations, weight decay penalizes large
weights"; "too small a network underfits, while too large a poorly regularized network may
overfit"; "Is a larger dataset a form of regularization? In practice yes". And chapter 8's
"Weight decay: a regularization update that discourages large parameter values".

Measured here on MNIST-1D with an MLP 40-256-256-10 (Adam, lr 1e-3, batch 50, a fixed number of
epochs and no early stopping, so that each run shows where its training ends), scored by the
final epoch's training and validation accuracy. The base run trains on 1,000 examples with no
regularization; each curve changes one thing:

1. **Data size** 250 to 3,600 examples: the validation accuracy at the most data is at least 10
   points above the least, and the train-validation gap at least 10 points narrower.
2. **Dropout 0.2, weight decay 3 (AdamW, decoupled), shift augmentation** (``fit``'s
   ``augment="shift"``: each signal moved by up to a few samples): each raises the mean
   validation accuracy over the seeds by at least 2 points over the base run.
3. **Weight decay sweep** 0 to 10: the parameters' L2 norm at the end falls at every step up
   the sweep; the largest decay (10) regularizes too much and underfits (training accuracy at
   most 60%).
4. **Capacity**, two hidden layers of width 2 to 512: the narrowest underfits (training accuracy
   at most 50%, within 10 points of validation), the widest overfits (training accuracy at least
   95%, at least 30 points above validation).

``--quick`` uses fewer points per curve, 2 seeds (full: 3) and 40 epochs (full: 50); the
assertions are the same.

Figure: train and validation accuracy against the data size and against the width; validation
accuracy of each regularizer against the base run; weight norm and accuracy along the weight
decay sweep.

Run: ``python -m experiments.ch13_regularization_curves [--quick] [--out DIR]``.
"""

from __future__ import annotations

import jax
import numpy as np

from experiments.harness import Experiment, fit_config
from experiments.style import BASELINE, PALETTE, TRAIN, VAL, legend_below, panels, threshold_line
from jaxnn.data import load, pipeline
from jaxnn.models import build
from jaxnn.train import fit

CLAIM = (
    "Chapter 13: more data narrows the train-validation gap; dropout, weight decay and "
    "augmentation each raise validation accuracy over the same unregularized network; weight "
    "decay shrinks the weights; too small a network underfits and too large an unregularized one "
    "overfits."
)
BASE_N, HIDDEN = 1000, (256, 256)
REGULARIZERS = {  # label: run options
    "none": {},
    "dropout 0.2": {"dropout": 0.2},
    "weight decay 3": {"weight_decay": 3.0},
    "shift augmentation": {"augment": "shift"},
}


def run(splits, epochs, *, n=BASE_N, hidden=HIDDEN, dropout=0.0, weight_decay=0.0,
        augment="none", seed=0) -> dict:  # fmt: skip
    """Final-epoch train and validation accuracy, and the final parameters' L2 norm."""
    data = splits.replace(train=splits.train.take(range(n)))
    model = build("mlp", data.info, hidden=hidden, dropout=dropout)
    cfg = fit_config(epochs=epochs, batch_size=50, lr=1e-3,
                    optimizer="adamw" if weight_decay else "adam", weight_decay=weight_decay,
                    augment=augment, seed=seed, progress=False, checkpoint=False)  # fmt: skip
    result = fit(model, data, cfg, verbose=False)
    last = result.history[-1]
    norm = float(np.sqrt(sum(float(np.sum(np.square(v))) for v in jax.tree.leaves(
        result.state.params))))  # fmt: skip
    return {"train": last["train_accuracy"], "val": last["val_accuracy"], "weight_norm": norm}


def _curve(ax, xs, rows, xlabel, title):
    ax.plot(xs, [r["train"] for r in rows], marker="o", color=TRAIN, label="train")
    ax.plot(xs, [r["val"] for r in rows], marker="o", ls="--", color=VAL, label="validation")
    ax.set_xscale("log", base=2)
    ax.set_xticks(xs, [f"{x:,}" for x in xs])
    ax.minorticks_off()
    ax.set_ylim(0, 1.05)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("final accuracy")
    ax.set_title(title)


def draw(exp, sizes, by_size, widths, by_width, regs, decays, by_decay):
    figs, (ax, bx, cx, dx) = panels(4, size=(4.2, 3.7))
    _curve(ax, sizes, by_size, "training examples", "More data, smaller gap")
    legend_below(ax, ncols=2)
    _curve(bx, widths, by_width, "hidden width (two layers)", "Capacity: under- to overfit")
    threshold_line(bx, 0.5, "asserted: narrowest train <= 0.5")
    legend_below(bx, ncols=2)
    names = list(regs)
    means = [np.mean([r["val"] for r in regs[k]]) for k in names]
    bars = cx.barh(names, means, color=[BASELINE if k == "none" else PALETTE[2] for k in names])
    cx.bar_label(bars, fmt="%.3f", padding=10)
    for i, k in enumerate(names):
        cx.plot([r["val"] for r in regs[k]], [i] * len(regs[k]), "o", color="white", ms=4,
                markeredgecolor="black")  # fmt: skip
    threshold_line(cx, means[0] + 0.02, "asserted: >= none + 2 points", horizontal=False)
    cx.invert_yaxis()
    cx.set_xlim(0, 0.9)
    cx.set_xlabel("final validation accuracy (dots: seeds)")
    cx.set_title(f"Regularizers ({BASE_N:,} examples)")
    legend_below(cx)
    x = np.arange(len(decays))
    dx.plot(x, [r["weight_norm"] for r in by_decay], marker="s", color=PALETTE[3],
            label="weight L2 norm")  # fmt: skip
    dx.set_xticks(x, [f"{d:g}" for d in decays])
    dx.set_xlabel("weight decay (AdamW)")
    dx.set_ylabel("L2 norm of the parameters")
    dx.set_title("Weight decay shrinks the weights")
    acc = dx.twinx()
    acc.plot(x, [r["train"] for r in by_decay], marker="o", color=TRAIN, label="train accuracy")
    acc.plot(x, [r["val"] for r in by_decay], marker="o", ls="--", color=VAL,
             label="validation accuracy")  # fmt: skip
    acc.set_ylim(0, 1.05)
    acc.set_ylabel("final accuracy")
    acc.grid(False)
    handles = dx.get_legend_handles_labels()
    more = acc.get_legend_handles_labels()
    legend_below(dx, handles[0] + more[0], handles[1] + more[1])
    exp.save(
        figs,
        "regularization.png",
        caption="More data closes the gap between training and validation; a narrow network "
        "underfits and a wide one overfits; dropout, weight decay and shifted copies of the "
        "signals each validate better than the plain network; stronger decay means smaller "
        "weights, and too strong a decay underfits.",
        alt=[
            "Final train and validation accuracy against the number of training examples: "
            "training stays near 1, validation climbs and the gap narrows.",
            "Final train and validation accuracy against the hidden width: both low for the "
            "narrowest network, train near 1 and validation far below for the widest.",
            "Horizontal bars of mean validation accuracy for no regularization, dropout, weight "
            "decay and shift augmentation, each seed a dot: the three regularizers beat none.",
            "Weight norm falling along the weight decay sweep, with train and validation "
            "accuracy: both drop at the largest decay.",
        ],
    )


def main(argv=None) -> None:
    exp = Experiment("ch13_regularization_curves", CLAIM, argv)
    if exp.quick:
        sizes, widths, decays, seeds, epochs = (250, 1000, 3600), (2, 32, 512), (0, 3, 10), 2, 40
        exp.notes.append("--quick: 3 points per curve, 2 seeds, 40 epochs")
    else:
        sizes, widths = (250, 500, 1000, 2000, 3600), (2, 8, 32, 128, 512)
        decays, seeds, epochs = (0, 0.3, 1, 3, 10), 3, 50
    splits, _ = pipeline.standardize(load("mnist1d", seed=0))
    by_size = [run(splits, epochs, n=n) for n in sizes]
    by_width = [run(splits, epochs, hidden=(w, w)) for w in widths]
    regs = {k: [run(splits, epochs, seed=s, **opts) for s in range(seeds)]
            for k, opts in REGULARIZERS.items()}  # fmt: skip
    by_decay = [regs["none"][0] if d == 0 else regs["weight decay 3"][0] if d == 3
                else run(splits, epochs, weight_decay=float(d)) for d in decays]  # fmt: skip
    mean_val = {k: float(np.mean([r["val"] for r in v])) for k, v in regs.items()}
    gap = [r["train"] - r["val"] for r in by_size]
    exp.record(
        epochs=epochs,
        seeds=seeds,
        train_sizes=list(sizes),
        train_accuracy_by_size=[r["train"] for r in by_size],
        val_accuracy_by_size=[r["val"] for r in by_size],
        widths=list(widths),
        train_accuracy_by_width=[r["train"] for r in by_width],
        val_accuracy_by_width=[r["val"] for r in by_width],
        mean_val_accuracy=mean_val,
        val_accuracy_per_seed={k: [r["val"] for r in v] for k, v in regs.items()},
        weight_decays=list(decays),
        weight_norm_by_decay=[r["weight_norm"] for r in by_decay],
        train_accuracy_by_decay=[r["train"] for r in by_decay],
    )
    draw(exp, sizes, by_size, widths, by_width, regs, decays, by_decay)

    exp.check(
        by_size[-1]["val"] >= by_size[0]["val"] + 0.10 and gap[-1] <= gap[0] - 0.10,
        f"more data: validation accuracy {by_size[0]['val']:.3f} -> {by_size[-1]['val']:.3f} "
        f"(>= +10 points) and the train-validation gap {gap[0]:.3f} -> {gap[-1]:.3f} (>= 10 "
        f"points narrower) from {sizes[0]:,} to {sizes[-1]:,} examples",
    )
    for k in list(REGULARIZERS)[1:]:
        exp.check(
            mean_val[k] >= mean_val["none"] + 0.02,
            f"{k} raises the mean validation accuracy over {seeds} seeds from "
            f"{mean_val['none']:.3f} to {mean_val[k]:.3f} (>= 2 points)",
        )
    norms = [r["weight_norm"] for r in by_decay]
    shown = ", ".join(f"{n:.1f}" for n in norms)
    exp.check(
        all(b < a for a, b in zip(norms, norms[1:], strict=False)),
        f"the weight norm falls at every step up the decay sweep ({shown})",
    )
    exp.check(
        by_decay[-1]["train"] <= 0.6,
        f"weight decay {decays[-1]:g} regularizes too much: it underfits (train accuracy "
        f"{by_decay[-1]['train']:.3f} <= 0.6)",
    )
    small, large = by_width[0], by_width[-1]
    exp.check(
        small["train"] <= 0.5 and abs(small["train"] - small["val"]) <= 0.10,
        f"width {widths[0]} underfits: train {small['train']:.3f} <= 0.5, within 10 points of "
        f"validation {small['val']:.3f}",
    )
    exp.check(
        large["train"] >= 0.95 and large["train"] - large["val"] >= 0.30,
        f"width {widths[-1]} overfits: train {large['train']:.3f} >= 0.95, >= 30 points above "
        f"validation {large['val']:.3f}",
    )
    exp.finish()


if __name__ == "__main__":
    main()
