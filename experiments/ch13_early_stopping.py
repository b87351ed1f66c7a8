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
   split with ``jaxnn.train.evaluate`` gives the minimum of the validation-loss history (to 1e-5).

``--quick`` uses 200 examples, patience 5 and at most 60 epochs (the same assertions).

Figure: train and validation loss per epoch with the best epoch marked.

Run: ``python experiments/ch13_early_stopping.py [--quick] [--out DIR]``.
"""

from __future__ import annotations

import numpy as np

from experiments.harness import Experiment, plt
from jaxnn.data import load, pipeline
from jaxnn.models import build
from jaxnn.train import FitConfig, evaluate, fit

CLAIM = (
    "Chapter 13: training loss keeps falling after validation loss turns up (overfitting); "
    "early stopping halts the run and keeps the best-validation model."
)


def main(argv=None) -> None:
    exp = Experiment("ch13_early_stopping", CLAIM, argv)
    n_train, patience, max_epochs = (200, 5, 60) if exp.quick else (400, 10, 200)
    if exp.quick:
        exp.notes.append("--quick: 200 training examples, patience 5, at most 60 epochs")
    splits, _ = pipeline.standardize(load("mnist1d", seed=0))
    splits = splits.replace(train=splits.train.take(range(n_train)))
    model = build("mlp", splits.info, hidden=(512, 512))
    fit_cfg = FitConfig(
        epochs=max_epochs,
        batch_size=50,
        lr=1e-3,
        monitor="val_loss",
        patience=patience,
        progress=False,
        checkpoint=False,
    )
    result = fit(model, splits, fit_cfg, verbose=False)
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

    fig, ax = plt.subplots(figsize=(6.5, 4))
    epochs = np.arange(1, len(history) + 1)
    ax.plot(epochs, train_loss, label="train loss")
    ax.plot(epochs, val_loss, label="validation loss")
    ax.axvline(best, color="gray", linestyle="--", label=f"best epoch {best} (restored)")
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("cross-entropy (nats)")
    ax.set_title(f"MNIST-1D, {n_train} training examples, MLP 40-512-512-10")
    ax.legend()
    exp.save(fig, "loss_curves.png")

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
    exp.finish()


if __name__ == "__main__":
    main()
