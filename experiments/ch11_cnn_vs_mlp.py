"""Chapter 11: a CNN beats a dense network on grid-like data, with fewer parameters and less data.

The book's claims: convolutions reuse small local filters at every position (parameter sharing,
locality, translation equivariance), so "this design greatly reduces parameters compared with
fully connected image models while improving data efficiency".

Measured here on MNIST-1D (40-sample signals whose digit templates are shifted, scaled and
noised): the default CNN (3 convolutions with pooling, a dense head) against an MLP 40-256-256-10,
both trained with the same optimizer, learning rate and batch size through ``fit``, on the first
``n`` training examples for several ``n``, each run given the same number of steps (a smaller set
is seen for more epochs), each scored on the test split with its best-validation parameters.
Asserted:

1. the CNN has fewer parameters than the MLP;
2. on all the training data the CNN scores at least 20 points more test accuracy;
3. data efficiency: the CNN reaches the MLP's all-data test accuracy with at most a quarter of
   the data (the smallest ``n`` at which the CNN scores at least as much is <= n_max / 4).

``--quick`` trains on 250 and 1,000 examples for 400 steps each (full: 250 to 3,600 examples,
1,080 steps); the assertions are the same.

Figure: train and validation accuracy per epoch of both models on the most data, with each
model's test accuracy (best-validation parameters) as a star at its best epoch; test accuracy
against the training-set size.

Run: ``python -m experiments.ch11_cnn_vs_mlp [--quick] [--out DIR]``.
"""

from __future__ import annotations

from experiments.harness import Experiment, fit_config
from experiments.style import (
    PALETTE,
    baseline_line,
    legend_below,
    panels,
    split_legend,
    train_val,
)
from jaxnn.data import load, pipeline
from jaxnn.models import build, get, param_count
from jaxnn.train import fit

CLAIM = (
    "Chapter 11: on grid-like data a CNN (shared local filters) beats a fully connected network "
    "by >= 20 points of test accuracy with fewer parameters, and reaches the MLP's all-data "
    "accuracy with a quarter of the data or less (MNIST-1D)."
)
COLORS = {"mlp": PALETTE[1], "cnn": PALETTE[0]}


def train(name: str, splits, n: int, steps: int, seed: int = 0):
    """Train ``name`` on the first ``n`` training examples for about ``steps`` steps."""
    subset = splits.replace(train=splits.train.take(range(n)))
    batch = min(100, n)
    epochs = max(1, round(steps / (n // batch)))
    cfg = fit_config(epochs=epochs, batch_size=batch, lr=3e-3, progress=False, checkpoint=False,
                    seed=seed)  # fmt: skip
    overrides = {"hidden": (256, 256)} if name == "mlp" else {}
    return fit(build(name, get(name).config_for(subset.info, **overrides)), subset, cfg,
               verbose=False)  # fmt: skip


def draw(exp, runs, sizes, acc, params) -> None:
    figs, (ax, bx) = panels(2, size=(4.2, 3.9))
    n_max = sizes[-1]
    for name in ("mlp", "cnn"):
        result = runs[name][n_max]
        epochs = [h["epoch"] for h in result.history]
        train_val(ax, epochs, [h["train_accuracy"] for h in result.history],
                  [h["val_accuracy"] for h in result.history], color=COLORS[name],
                  label=f"{name.upper()} ({params[name]:,} params)")  # fmt: skip
        best = result.summary["best_epoch"]
        ax.plot([best], [acc[name][-1]], marker="*", markersize=14, color=COLORS[name],
                linestyle="none", markeredgecolor="black")  # fmt: skip
    baseline_line(ax, 0.1, "chance (10 classes)")
    ax.set_xlabel("epoch")
    ax.set_ylabel("accuracy (star: test)")
    ax.set_ylim(0, 1.02)
    ax.set_title(f"All {n_max:,} training examples")
    split_legend(ax, below=True)
    for name in ("mlp", "cnn"):
        bx.plot(sizes, acc[name], marker="o", color=COLORS[name], label=name.upper())
    bx.axhline(acc["mlp"][-1], color=COLORS["mlp"], ls=":", lw=1.2,
               label=f"MLP on all data ({acc['mlp'][-1]:.2f})")  # fmt: skip
    bx.axvline(n_max / 4, color="#222222", ls="-.", lw=1.2, label="asserted: CNN there by n/4")
    baseline_line(bx, 0.1, "chance")
    bx.set_xscale("log")
    bx.set_xticks(sizes, [f"{n:,}" for n in sizes])
    bx.minorticks_off()
    bx.set_ylim(0, 1.02)
    bx.set_xlabel("training examples n")
    bx.set_ylabel("test accuracy")
    bx.set_title("Data efficiency")
    legend_below(bx, ncols=2)
    exp.save(
        figs,
        "accuracy.png",
        caption=f"On all the data the CNN ends far above the MLP with fewer parameters; with "
        f"{sizes[0]:,} examples it already matches or beats what the MLP reaches with "
        f"{n_max:,}.",
        alt=[
            "Training (solid) and validation (dashed) accuracy per epoch of the MLP and the CNN "
            "on all the training data, with a star at each test accuracy: the CNN's curves lie "
            "far above.",
            "Test accuracy against the number of training examples on a log axis: the CNN's "
            "line lies above the MLP's everywhere and crosses the MLP's all-data level at a "
            "fraction of the data.",
        ],
    )


def main(argv=None) -> None:
    exp = Experiment("ch11_cnn_vs_mlp", CLAIM, argv)
    splits, _ = pipeline.standardize(load("mnist1d", seed=0))
    if exp.quick:
        sizes, steps = (250, 1000), 400
        exp.notes.append("--quick: 250 and 1,000 training examples, 400 steps each")
    else:
        sizes, steps = (250, 500, 1000, 2000, len(splits.train)), 1080
    runs = {name: {n: train(name, splits, n, steps) for n in sizes} for name in ("mlp", "cnn")}
    acc = {k: [runs[k][n].summary["test_accuracy"] for n in sizes] for k in runs}
    params = {k: param_count(runs[k][sizes[-1]].best_params) for k in runs}
    reach = next((n for n, a in zip(sizes, acc["cnn"], strict=True) if a >= acc["mlp"][-1]), None)
    exp.record(
        train_sizes=list(sizes),
        steps_per_run=steps,
        test_accuracy_mlp=acc["mlp"],
        test_accuracy_cnn=acc["cnn"],
        accuracy_gap_all_data=acc["cnn"][-1] - acc["mlp"][-1],
        params_mlp=params["mlp"],
        params_cnn=params["cnn"],
        cnn_examples_to_reach_mlp_all_data=reach,
    )
    draw(exp, runs, sizes, acc, params)

    exp.check(params["cnn"] < params["mlp"], "the CNN has fewer parameters than the MLP")
    exp.check(
        acc["cnn"][-1] - acc["mlp"][-1] >= 0.20,
        f"on all {sizes[-1]:,} examples the CNN beats the MLP by >= 20 points of test accuracy "
        f"({acc['cnn'][-1]:.3f} vs {acc['mlp'][-1]:.3f})",
    )
    exp.check(
        reach is not None and reach <= sizes[-1] / 4,
        f"the CNN reaches the MLP's all-data accuracy {acc['mlp'][-1]:.3f} with {reach} "
        f"examples (<= a quarter of {sizes[-1]:,})",
    )
    exp.finish()


if __name__ == "__main__":
    main()
