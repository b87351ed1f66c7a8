"""Chapter 13: training loss can keep improving after validation loss has turned up; stop early.

The book's claim: minimizing training loss is not the goal; past some point the training loss
keeps falling while validation performance worsens (overfitting), and early stopping halts
training when validation stops improving, keeping the model from the best validation epoch.

Measured here: a wide MLP (40-512-512-10) on a small training subset of MNIST-1D (400 examples;
``--quick``: 200), trained by ``fit`` with ``monitor="val_loss"`` and ``patience``. Asserted:

1. the run stops early (``stopped_reason == "early_stopping"``);
2. after the best-validation epoch the training loss kept falling (last < best epoch's) while the
   validation loss rose (last > best by at least 0.05 nats);
3. the parameters ``fit`` returns are those of the best epoch: re-scoring them on the validation
   split with ``jaxnn.train.evaluate`` gives the minimum of the validation-loss history (to 1e-5);
4. the patience knob: the same run without early stopping gives the whole validation curve; for
   every patience ``p`` of the slider, ``fit`` with patience ``p`` stops at the first epoch that
   follows ``p`` epochs without a new best on that curve, and keeps the best epoch up to there
   (its history equals the long run's up to the stop, bit for bit: the run is deterministic).

``--quick`` uses 200 examples, patience 5, at most 60 epochs and patience values 1, 3, 5 and 10
(full: 400 examples, patience 10, at most 200 epochs, patience 1 to 30); the assertions are the
same.

Figure: train and validation loss per epoch with the best epoch marked. Slider: the run under
each patience, where it stops and which epoch it keeps, with its test accuracy.

Run: ``python -m experiments.ch13_early_stopping [--quick] [--out DIR]``.
"""

from __future__ import annotations

import numpy as np

from experiments.harness import Experiment, fit_config
from experiments.style import BASELINE, PALETTE, legend_below, panels, threshold_line, train_val
from jaxnn.data import load, pipeline
from jaxnn.models import build
from jaxnn.train import evaluate, fit

CLAIM = (
    "Chapter 13: training loss keeps falling after validation loss turns up (overfitting); "
    "early stopping halts the run and keeps the best-validation model, wherever the patience "
    "sets the stop."
)


def predicted_stop(val_loss, patience: int) -> tuple[int, int]:
    """``(stop epoch, best epoch)`` (1-based) of early stopping with ``patience`` on a
    validation-loss curve: the first epoch after ``patience`` epochs without a new minimum."""
    best, bad = 0, 0
    for e in range(1, len(val_loss)):
        if val_loss[e] < val_loss[best]:
            best, bad = e, 0
        else:
            bad += 1
            if bad == patience:
                return e + 1, best + 1
    return len(val_loss), best + 1


def draw(exp, n_train, history, best):
    figs, (ax,) = panels(1, size=(4.6, 3.6))
    epochs = np.arange(1, len(history) + 1)
    train_loss = [h["train_loss"] for h in history]
    val_loss = [h["val_loss"] for h in history]
    train_val(ax, epochs, train_loss, val_loss, train_label="train loss")
    ax.axvline(best, color=BASELINE, linestyle="--", label=f"best epoch {best} (kept)")
    threshold_line(ax, val_loss[best - 1] + 0.05, "asserted: last val > best + 0.05")
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("cross-entropy (nats)")
    ax.set_title(f"MNIST-1D, {n_train} examples, MLP 512-512")
    legend_below(ax, ncols=2)
    exp.save(
        figs,
        "loss_curves.png",
        caption="The training loss keeps falling while the validation loss turns up after the "
        "kept epoch; the run stopped once patience ran out.",
        alt="Training and validation loss per epoch on a log axis: validation bottoms out at "
        f"epoch {best} and climbs while training keeps falling.",
    )


def draw_patience_slider(exp, long_history, runs):
    val = [h["val_loss"] for h in long_history]
    train = [h["train_loss"] for h in long_history]
    frames, axes = panels(len(runs), size=(4.2, 3.8))
    epochs = np.arange(1, len(val) + 1)
    for (p, r), ax in zip(runs.items(), axes, strict=True):
        stop, best = r["epochs_run"], r["best_epoch"]
        ax.plot(epochs, train, color="#cccccc", lw=1.2)
        ax.plot(epochs, val, color="#cccccc", lw=1.2, ls="--", label="without early stopping")
        train_val(ax, epochs[:stop], train[:stop], val[:stop])
        ax.axvline(stop, color=BASELINE, ls=":", label=f"stops at epoch {stop}")
        ax.plot([best], [val[best - 1]], marker="*", ms=14, color=PALETTE[1], ls="none",
                markeredgecolor="black", label=f"keeps epoch {best}")  # fmt: skip
        ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.set_ylabel("cross-entropy (nats)")
        ax.set_title(f"patience {p}: test accuracy {r['test_accuracy']:.3f}")
        legend_below(ax, ncols=2)
    exp.slider(
        "patience",
        "patience (epochs)",
        list(runs),
        frames,
        caption="Little patience stops at the first wobble of the validation loss; more patience "
        "runs on into overfitting, yet keeps the best epoch it saw.",
        alt=[
            f"The run with patience {p}: curves up to epoch {r['epochs_run']}, the kept epoch "
            f"{r['best_epoch']} starred, the rest of the long run in gray."
            for p, r in runs.items()
        ],
        initial=min(2, len(runs) - 1),
    )


def main(argv=None) -> None:
    exp = Experiment("ch13_early_stopping", CLAIM, argv)
    if exp.quick:
        n_train, patience, max_epochs, knob = 200, 5, 60, (1, 3, 5, 10)
        exp.notes.append("--quick: 200 training examples, patience 5, at most 60 epochs")
    else:
        n_train, patience, max_epochs, knob = 400, 10, 200, (1, 2, 3, 5, 8, 13, 20, 30)
    splits, _ = pipeline.standardize(load("mnist1d", seed=0))
    splits = splits.replace(train=splits.train.take(range(n_train)))
    model = build("mlp", splits.info, hidden=(512, 512))

    def run(p: int):
        cfg = fit_config(epochs=max_epochs, batch_size=50, lr=1e-3, monitor="val_loss",
                        patience=p, progress=False, checkpoint=False)  # fmt: skip
        return fit(model, splits, cfg, verbose=False)

    result = run(patience)
    history = result.history
    train_loss = np.array([h["train_loss"] for h in history])
    val_loss = np.array([h["val_loss"] for h in history])
    best = result.summary["best_epoch"]  # 1-based
    rescored = evaluate(model, result.best_params, result.best_model_state, splits.val)["loss"]
    exp.record(
        train_examples=n_train,
        patience=patience,
        epochs_run=len(history),
        stopped_reason=result.summary["stopped_reason"],
        best_epoch=best,
        best_val_loss=float(val_loss.min()),
        last_val_loss=float(val_loss[-1]),
        train_loss_at_best=float(train_loss[best - 1]),
        last_train_loss=float(train_loss[-1]),
        rescored_best_val_loss=float(rescored),
        best_val_accuracy=result.summary["best_val_accuracy"],
        test_accuracy=result.summary["test_accuracy"],
    )
    draw(exp, n_train, history, best)

    long_history = run(0).history
    long_val = [h["val_loss"] for h in long_history]
    runs, matches = {}, {}
    for p in knob:
        r = run(p)
        stop, keep = predicted_stop(long_val, p)
        runs[p] = {"epochs_run": len(r.history), "best_epoch": r.summary["best_epoch"],
                   "test_accuracy": r.summary["test_accuracy"]}  # fmt: skip
        same_prefix = r.history and [h["val_loss"] for h in r.history] == long_val[:stop]
        matches[p] = bool(same_prefix) and (len(r.history), r.summary["best_epoch"]) == (stop, keep)
    exp.record(
        patience_values=list(knob),
        stop_epoch_by_patience=[runs[p]["epochs_run"] for p in knob],
        kept_epoch_by_patience=[runs[p]["best_epoch"] for p in knob],
        test_accuracy_by_patience=[runs[p]["test_accuracy"] for p in knob],
    )
    draw_patience_slider(exp, long_history, runs)

    exp.check(result.summary["stopped_reason"] == "early_stopping", "the run stopped early")
    exp.check(
        train_loss[-1] < train_loss[best - 1],
        "training loss kept falling after the best-validation epoch",
    )
    exp.check(
        val_loss[-1] > val_loss[best - 1] + 0.05,
        "validation loss rose by > 0.05 nats after the best-validation epoch",
    )
    exp.check(
        best == int(np.argmin(val_loss)) + 1 and abs(rescored - val_loss.min()) < 1e-5,
        "fit returns the best-validation parameters: their val loss is the history's minimum",
    )
    exp.check(
        all(matches.values()),
        f"for every patience {', '.join(map(str, knob))} fit stops and keeps the epochs that the "
        "long run's validation curve predicts",
    )
    exp.finish()


if __name__ == "__main__":
    main()
