"""Chapter 1: a network is a parameterized function; wider ones fit better, and can memorize.

The book's claim: a neural network learns a parameterized function that maps inputs to desired
outputs; it stores parameters that shape a function rather than the training examples, though
overly large models can memorize data.

Measured here, with ``fit`` and ``jaxnn.models.build("mlp", ...)``:

1. **Approximation.** A one-hidden-layer ReLU MLP ``1-w-1`` (a piecewise-linear function with
   ``w`` kinks) regresses ``y = sin x + noise`` (``synthetic:sine``, noise 0.1, so the best
   possible mean squared error is 0.01). The validation error falls as the width ``w`` grows: the
   widest net's error is at most a fifth of the width-1 net's and within 3x of the noise floor.
2. **Parameters, not examples.** The widest net keeps at most a fifth as many numbers as its
   training set holds (``x`` and ``y`` of every pair), yet predicts the validation inputs better
   than a lookup table that stores them all (1-nearest neighbour). It has not stored the examples:
   its training error stays near the noise floor (at least 0.8 of it), where the table's is 0.
3. **Memorization.** A wide MLP ``64-512-512-10`` trained on 8x8 ``digits`` images whose labels
   are replaced by uniformly random ones (there is no function to learn) reaches 100% training
   accuracy, while on the other training images (with their own random labels, about 1,000 of
   them) its final parameters score at chance, 10% (asserted at most 15%). The same images with
   their true labels give a validation accuracy at least 30 points higher, so the gap is the
   labels', not the inputs'.

``--quick`` uses 500 sine points, widths 1, 4 and 32, 300 memorized images and fewer epochs (the
same assertions).

Figure: the fitted curves by width; validation error against width (log-log) with the noise floor
and the lookup table; train and validation error of the widest net and the table; train and
validation accuracy per epoch under random labels with the chance line.

Run: ``python -m experiments.ch01_function_approximation [--quick] [--out DIR]``.
"""

from __future__ import annotations

import numpy as np

from experiments.harness import Experiment, fit_config
from experiments.style import BASELINE, TRAIN, VAL, baseline_line, panels, threshold_line, train_val
from jaxnn.data import Dataset, load, pipeline
from jaxnn.models import build, get, param_count
from jaxnn.train import evaluate, fit

CLAIM = (
    "Chapter 1: a network learns a parameterized function (its approximation error falls as it "
    "grows wider) and keeps parameters, not examples (fewer numbers than its data, better than a "
    "table of them), yet an overly large model can memorize data: random labels reach 100% "
    "training accuracy and stay at chance on validation."
)
NOISE = 0.1


def width_sweep(widths, n: int, epochs: int, seed: int) -> tuple[dict, object]:
    """Validation MSE and the fitted model of a ``1-w-1`` ReLU MLP for each width ``w``."""
    splits = load("synthetic:sine", seed=seed, n=n, noise=NOISE)
    cfg = fit_config(
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
    cfg = fit_config(
        epochs=epochs, batch_size=50, lr=1e-3, seed=seed, progress=False, checkpoint=False
    )
    result = fit(model, splits, cfg, verbose=False)
    params, state = result.state.params, result.state.model_state
    return {
        "train_accuracy": evaluate(model, params, state, splits.train)["accuracy"],
        "val_accuracy": evaluate(model, params, state, splits.val)["accuracy"],
        "history": result.history,
    }


def lookup_table(splits) -> dict:
    """A 1-nearest-neighbour table, which stores every training pair: its train and val MSE."""
    x, y = splits.train.x[:, 0], splits.train.y[:, 0]
    order = np.argsort(x)
    xs, ys = x[order], y[order]

    def predict(q):
        i = np.clip(np.searchsorted(xs, q), 1, len(xs) - 1)
        left_closer = np.abs(q - xs[i - 1]) <= np.abs(xs[i] - q)
        return np.where(left_closer, ys[i - 1], ys[i])

    return {
        "train_mse": float(np.mean((predict(x) - y) ** 2)),
        "val_mse": float(np.mean((predict(splits.val.x[:, 0]) - splits.val.y[:, 0]) ** 2)),
        "numbers": int(x.size + y.size),
    }


def draw(exp, runs, splits, mse, memo, chance, table, widest):
    figs, (ax, bx, cx, dx) = panels(4)
    x = np.linspace(-np.pi, np.pi, 300, dtype=np.float32)[:, None]  # (300, 1)
    ax.scatter(splits.train.x[:, 0], splits.train.y[:, 0], s=4, color="#bbbbbb", label="train")
    ax.plot(x[:, 0], np.sin(x[:, 0]), color="black", linestyle=":", label="sin x")
    shown = [w for w in runs if w in (min(runs), 4, max(runs))]
    for w in shown:
        model, result = runs[w]
        y, _ = model.apply(result.best_params, x, state=result.best_model_state)
        ax.plot(x[:, 0], np.asarray(y)[:, 0], label=f"width {w}")
    ax.set_xlabel("input x")
    ax.set_ylabel("prediction y")
    ax.set_title("The learned function, by width")
    ax.legend(loc="upper left")
    widths = list(runs)
    bx.plot(widths, mse, marker="o", color=VAL, label="network, validation")
    baseline_line(bx, table["val_mse"], "lookup table, validation")
    bx.axhline(NOISE**2, color=BASELINE, ls="--", lw=1.2, label=f"noise floor {NOISE**2:g}")
    threshold_line(bx, 3 * NOISE**2, "asserted: <= 3x the floor")
    bx.set_xscale("log", base=2)
    bx.set_yscale("log")
    bx.set_xlabel("hidden width (units)")
    bx.set_ylabel("mean squared error")
    bx.set_title("Wider approximates better")
    bx.set_ylim(0.5 * NOISE**2, 1.6 * max(mse))
    bx.legend(loc="lower left")
    names = [
        f"network\n({widest['params']} numbers)",
        f"lookup table\n({table['numbers']:,} numbers)",
    ]
    pos = np.arange(2)
    for shift, key, color, label in (
        (-0.2, "train_mse", TRAIN, "train"),
        (0.2, "val_mse", VAL, "validation"),
    ):
        bars = cx.bar(pos + shift, [widest[key], table[key]], 0.4, color=color, label=label)
        cx.bar_label(bars, fmt="%.3f")  # fmt: skip
    cx.axhline(NOISE**2, color=BASELINE, ls="--", lw=1.2, label="noise floor")
    cx.set_xticks(pos, names)
    cx.set_ylabel("mean squared error")
    cx.set_ylim(0, 1.3 * max(table["val_mse"], widest["val_mse"]))
    cx.set_title("Parameters, not examples")
    cx.legend(loc="upper left")
    hist = memo["history"]
    epochs = [h["epoch"] for h in hist]
    train_val(dx, epochs, [h["train_accuracy"] for h in hist], [h["val_accuracy"] for h in hist])
    baseline_line(dx, chance, f"chance {chance:.0%}")
    threshold_line(dx, 1.5 * chance, "asserted: val <= 1.5x chance")
    dx.set_ylim(0, 1.05)
    dx.set_xlabel("epoch")
    dx.set_ylabel("accuracy (random labels)")
    dx.set_title("A big network memorizes noise")
    dx.legend(loc="center right")
    w = max(runs)
    exp.save(
        figs,
        "approximation_and_memorization.png",
        caption=f"The error falls with width toward the noise floor; the width-{w} network keeps "
        f"{widest['params']} numbers and beats a table of all {table['numbers']:,}, yet a big "
        "network can also learn random labels by heart.",
        alt=[
            f"Noisy sine samples and the curves learned by networks of widths {shown}: the "
            "widest follows the sine.",
            "Validation error against hidden width on log axes, falling toward the noise floor "
            "and below the lookup table's error.",
            "Bars of train and validation error: the network's train error sits at the noise "
            "floor, the lookup table's is zero and its validation error is higher.",
            "Accuracy per epoch on random labels: training accuracy climbs to 100% while "
            "validation stays at chance.",
        ],
    )


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
    table = lookup_table(sine)
    model, result = runs[widths[-1]]
    widest = {
        "params": param_count(result.best_params),
        "train_mse": evaluate(model, result.best_params, result.best_model_state, sine.train,
                              task="regression")["loss"],
        "val_mse": mse[-1],
    }  # fmt: skip
    exp.record(
        widths=list(widths),
        val_mse_by_width=mse,
        noise_floor=NOISE**2,
        widest_params=widest["params"],
        widest_train_mse=widest["train_mse"],
        lookup_table_numbers=table["numbers"],
        lookup_table_train_mse=table["train_mse"],
        lookup_table_val_mse=table["val_mse"],
        memorized_examples=n_train,
        random_labels_train_accuracy=memo["train_accuracy"],
        random_labels_val_accuracy=memo["val_accuracy"],
        true_labels_val_accuracy=control["val_accuracy"],
        chance=chance,
    )
    draw(exp, runs, sine, mse, memo, chance, table, widest)

    exp.check(
        mse[-1] <= mse[0] / 5 and mse[-1] <= 3 * NOISE**2,
        f"validation MSE falls with width: {mse[0]:.3f} at width 1 -> {mse[-1]:.4f} at "
        f"width {widths[-1]} (<= a fifth, and <= 3x the noise floor {NOISE**2:g})",
    )
    exp.check(
        widest["params"] <= table["numbers"] / 5 and widest["val_mse"] < table["val_mse"],
        f"the width-{widths[-1]} network keeps {widest['params']} numbers (<= a fifth of the "
        f"{table['numbers']} in its training set) and predicts unseen inputs better than a "
        f"lookup table of them all (MSE {widest['val_mse']:.4f} < {table['val_mse']:.4f})",
    )
    exp.check(
        widest["train_mse"] >= 0.8 * NOISE**2 and table["train_mse"] == 0.0,
        f"the network does not store its examples: its training error "
        f"{widest['train_mse']:.4f} stays near the noise floor {NOISE**2:g} (>= 0.8x), where "
        "the lookup table's is exactly 0",
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
