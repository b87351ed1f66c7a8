"""Chapter 15: the end-to-end loop logs train and validation, checkpoints, and survives a kill.

The book's claims: "Why log both training and validation metrics? Their relationship reveals
optimization progress, overfitting, underfitting, and data issues." "Why save checkpoints? They
allow recovery from failures and make it possible to select the best validation-performing
model."

Measured here with ``jaxnn.train.fit`` writing a run directory (``metrics.jsonl``,
``summary.json``, ``checkpoints/``): a wide MLP (64-512-512-10) on the digits set whose training
labels are 40% wrong (``corrupt.label_noise``; validation and test labels are clean), Adam at a
constant learning rate, validation accuracy monitored, no early stopping, so the run memorizes
the wrong labels on purpose (``--quick``: 30 epochs; full: 60).

1. Curves: the training loss falls below 10% of its first value (the wrong labels are learned
   too) while validation accuracy falls at least 5 points below its best.
2. Checkpoints: the run directory holds checkpoints (the newest two and the best one).
3. Best against last: the best-validation parameters that ``fit`` returns score at least 10
   points more test accuracy than the last epoch's parameters (both scored on the test split).
4. Recovery: the same run started in a separate process and killed with SIGKILL after half of its
   epochs, then resumed with ``resume=True`` into the same directory, ends with parameters whose
   SHA-256 equals the uninterrupted run's (last and best parameters alike), and the same test
   accuracy; its ``metrics.jsonl`` holds the uninterrupted run's records (train and validation
   loss and accuracy, gradient norm), epoch for epoch, bit for bit.
5. The gradient norm as a stability monitor, from the training step itself
   (``jaxnn.train.make_train_step``, 40 steps of plain SGD on the clean digits MLP): at lr 0.3 it
   stays below 10x its first step's; at lr 1.0 it passes 100x its first step's before the loss
   turns non-finite.

Figure: train and validation loss and accuracy per epoch with the best epoch, the kill and the
resumed run's records marked; the logged gradient norm; test accuracy of the best and the last
parameters; the per-step gradient norm of a stable and an unstable run.

Run: ``python -m experiments.ch15_end_to_end [--quick] [--out DIR]``.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np

from experiments.harness import Experiment, fit_config
from experiments.style import (
    BASELINE,
    PALETTE,
    TRAIN,
    baseline_line,
    legend_below,
    panels,
    threshold_line,
    train_val,
)

CLAIM = (
    "Chapter 15: logging train and validation metrics reveals overfitting, checkpoints select "
    "the best-validation model (it beats the last epoch on test data) and recover from a failure "
    "(a killed and resumed run ends bit for bit where the uninterrupted run ends), and the "
    "gradient norm tells a stable run from one about to diverge."
)


NOISE = 0.4  # fraction of wrong training labels
STABLE_LR, UNSTABLE_LR = 0.3, 1.0
LOGGED = ("epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "grad_norm")


def epochs_for(quick: bool) -> int:
    return 30 if quick else 60


def train_run(out_dir: str, quick: bool, resume: bool = False) -> dict:
    """One training run into ``out_dir``; also scores the last epoch's params on the test split.

    Returns ``summary.json`` plus ``last_test_loss`` and ``last_test_accuracy`` (also written to
    ``out_dir/last_epoch_test.json``). Runs in this process or in a child process alike.
    """
    from jaxnn.data import corrupt, load, pipeline
    from jaxnn.models import build
    from jaxnn.train import evaluate, fit

    splits, _ = pipeline.standardize(load("digits", seed=0))
    noisy, _ = corrupt.label_noise(splits.train, NOISE, num_classes=10, seed=0)
    splits = splits.replace(train=noisy)
    model = build("mlp", splits.info, hidden=(512, 512))
    cfg = fit_config(
        epochs=epochs_for(quick),
        batch_size=50,
        lr=1e-3,
        schedule="constant",
        monitor="val_accuracy",
        seed=0,
        progress=False,
    )
    result = fit(model, splits, cfg, out_dir=out_dir, resume=resume, verbose=True)
    test = splits.test.unseal("ch15: score the last epoch's params to compare with the best")
    last = evaluate(model, result.state.params, result.state.model_state, test)
    extra = {"last_test_loss": last["loss"], "last_test_accuracy": last["accuracy"]}
    (Path(out_dir) / "last_epoch_test.json").write_text(json.dumps(extra, indent=2) + "\n")
    return {**result.summary, **extra}


def _child(out_dir: Path, quick: bool, resume: bool) -> list[str]:
    code = (
        "from experiments.ch15_end_to_end import train_run; "
        f"train_run({str(out_dir)!r}, {quick}, resume={resume})"
    )
    return [sys.executable, "-c", code]


def kill_after(out_dir: Path, quick: bool, epochs_logged: int) -> tuple[bool, int]:
    """Start the run in a child process and SIGKILL it once it has logged ``epochs_logged``
    epochs. Returns ``(killed by the signal, epochs in metrics.jsonl when it died)``."""
    proc = subprocess.Popen(
        _child(out_dir, quick, resume=False),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    seen = 0
    for line in proc.stdout:
        seen += line.startswith("epoch ")
        if seen == epochs_logged:
            proc.send_signal(signal.SIGKILL)
            break
    proc.stdout.close()
    killed = proc.wait() == -signal.SIGKILL
    logged = out_dir / "metrics.jsonl"
    done = len(logged.read_text().splitlines()) if logged.exists() else 0
    return killed, done


def resume_in_child(out_dir: Path, quick: bool) -> dict:
    """Resume the killed run in a child process; its summary, last-epoch test scores and the
    epoch it resumed from (``fit`` says "resumed from step S (epoch E)")."""
    done = subprocess.run(
        _child(out_dir, quick, resume=True), check=True, capture_output=True, text=True
    )
    found = re.search(r"resumed from step \d+ \(epoch (\d+)\)", done.stdout + done.stderr)
    summary = json.loads((out_dir / "summary.json").read_text())
    return {
        **summary,
        **json.loads((out_dir / "last_epoch_test.json").read_text()),
        "resumed_from_epoch": int(found.group(1)) if found else 0,
    }


def read_history(out_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (out_dir / "metrics.jsonl").read_text().splitlines()]


def checkpoint_steps(out_dir: Path) -> list[int]:
    """The complete checkpoints in the run directory (``checkpoints/<step>/``)."""
    root = out_dir / "checkpoints"
    return sorted(int(p.name) for p in root.iterdir() if p.is_dir() and p.name.isdigit())


def step_grad_norms(lr: float, steps: int = 40, seed: int = 0) -> dict:
    """Per-step loss and gradient norm of plain SGD at ``lr`` on the clean digits MLP, from
    ``jaxnn.train.make_train_step`` (the step ``fit`` runs; it applies no non-finite update)."""
    import optax

    from jaxnn.data import load, pipeline
    from jaxnn.models import build
    from jaxnn.train import create_train_state, make_train_step

    splits, _ = pipeline.standardize(load("digits", seed=seed))
    model = build("mlp", splits.info, hidden=(512, 512))
    tx = optax.sgd(lr)
    step, state = make_train_step(model, tx), create_train_state(model, tx, seed)
    x, y = splits.train.x, splits.train.y
    rows = {"loss": [], "grad_norm": []}
    for i in range(steps):
        idx = np.arange(i * 50, i * 50 + 50) % len(x)
        state, m = step(state, x[idx], y[idx])
        rows["loss"].append(float(m["loss"]))
        rows["grad_norm"].append(float(m["grad_norm"]))
    return rows


def first_step(values, predicate) -> int | None:
    """The first (0-based) index whose value satisfies ``predicate``, or None."""
    return next((i for i, v in enumerate(values) if predicate(v)), None)


def draw_stability(exp, stable, unstable, warn, nan_at) -> None:
    figs, (ax,) = panels(1, size=(4.6, 3.9))
    for rows, lr, color in ((stable, STABLE_LR, PALETTE[0]), (unstable, UNSTABLE_LR, PALETTE[1])):
        norms = np.array(rows["grad_norm"])
        shown = np.isfinite(norms)
        ax.plot(
            np.flatnonzero(shown), norms[shown], marker=".", color=color, label=f"SGD lr {lr:g}"
        )
    first = stable["grad_norm"][0]
    threshold_line(ax, 10 * first, "asserted: stable run < 10x step 0")
    ax.axhline(100 * first, color=PALETTE[1], ls="-.", lw=1.2, label="asserted: unstable > 100x")
    ax.axvline(warn, color=PALETTE[1], ls=":", lw=1.2, label=f"passes 100x at step {warn}")
    ax.axvline(nan_at, color="black", ls="--", lw=1.2, label=f"loss non-finite at step {nan_at}")
    ax.set_yscale("log")
    ax.set_xlabel("training step")
    ax.set_ylabel("gradient norm")
    ax.set_title("The gradient norm warns first")
    legend_below(ax)
    exp.save(
        figs,
        "gradient_norm.png",
        caption=f"At lr {STABLE_LR:g} the gradient norm settles; at lr {UNSTABLE_LR:g} it climbs "
        f"by orders of magnitude and passes 100x its start at step {warn}, {nan_at - warn} steps "
        "before the loss turns non-finite.",
        alt="Gradient norm per training step on a log axis for a stable and an unstable learning "
        "rate: the stable one stays low, the unstable one climbs steeply until the loss becomes "
        "NaN.",
    )


def draw(exp, history, resumed_history, straight, killed_at, resumed_from) -> None:
    figs, (ax, bx, cx, dx) = panels(4, size=(4.2, 3.9))
    epochs = [h["epoch"] for h in history]
    best = straight["best_epoch"]
    after = [h for h in resumed_history if h["epoch"] > resumed_from]
    for axis, metric, unit in ((ax, "loss", "cross-entropy (nats)"), (bx, "accuracy", "accuracy")):
        train_val(axis, epochs, [h[f"train_{metric}"] for h in history],
                  [h[f"val_{metric}"] for h in history],
                  train_label="train (40% wrong labels)")  # fmt: skip
        axis.plot([h["epoch"] for h in after], [h[f"val_{metric}"] for h in after], "x",
                  color="black", ms=5, label="resumed run (validation)")  # fmt: skip
        axis.axvline(best, color=PALETTE[2], linestyle="--", label=f"best epoch {best}")
        axis.axvline(killed_at, color=BASELINE, linestyle=":", label=f"SIGKILL after {killed_at}")
        axis.set_xlabel("epoch")
        axis.set_ylabel(unit)
        legend_below(axis, ncols=2)
    ax.set_yscale("log")
    ax.set_title("The run memorizes wrong labels")
    bx.set_title("Validation accuracy peaks, then falls")
    cx.plot(epochs, [h["grad_norm"] for h in history], color=TRAIN, label="uninterrupted run")
    cx.plot([h["epoch"] for h in after], [h["grad_norm"] for h in after], "x", color="black",
            ms=5, label="resumed run")  # fmt: skip
    cx.axvline(killed_at, color=BASELINE, linestyle=":", label=f"SIGKILL after {killed_at}")
    cx.set_yscale("log")
    cx.set_xlabel("epoch")
    cx.set_ylabel("mean gradient norm of the epoch")
    cx.set_title("Gradient norm, logged every epoch")
    legend_below(cx, ncols=2)
    values = [straight["test_accuracy"], straight["last_test_accuracy"]]
    bars = dx.bar([f"best epoch ({best})", f"last epoch ({epochs[-1]})"], values,
                  color=[PALETTE[2], PALETTE[1]])  # fmt: skip
    dx.bar_label(bars, fmt="%.3f")
    threshold_line(dx, values[0] - 0.10, "asserted: last <= best - 10 points")
    baseline_line(dx, 0.1, "chance")
    dx.set_ylim(0, 1.1)
    dx.set_ylabel("test accuracy")
    dx.set_title("Checkpoint selection on test data")
    legend_below(dx)
    exp.save(
        figs,
        "end_to_end.png",
        caption="Logged side by side, training loss keeps falling while validation accuracy "
        "peaks and falls; the resumed run's points (crosses) land on the uninterrupted run's "
        "curves; the best checkpoint beats the last epoch on test data.",
        alt=[
            "Training and validation loss per epoch: training falls steadily, validation turns "
            "up after the best epoch; crosses from the resumed run sit on the validation curve.",
            "Training and validation accuracy per epoch: validation peaks at the best epoch and "
            "falls; the resumed run's crosses coincide with it.",
            "The epoch's mean gradient norm per epoch, with the resumed run's values on the same "
            "curve.",
            "Bars of test accuracy for the best-validation checkpoint and the last epoch: the "
            "best is higher by more than ten points.",
        ],
    )


def main(argv=None) -> None:
    exp = Experiment("ch15_end_to_end", CLAIM, argv)
    epochs = epochs_for(exp.quick)
    if exp.quick:
        exp.notes.append("--quick: 30 epochs (full: 60); same assertions")
    straight_dir, killed_dir = exp.out / "run_straight", exp.out / "run_killed"
    for d in (straight_dir, killed_dir):
        if d.exists():
            raise SystemExit(f"{d} exists: give an empty --out so the runs start from scratch")
    straight = train_run(str(straight_dir), exp.quick)
    history = read_history(straight_dir)
    killed, done = kill_after(killed_dir, exp.quick, epochs_logged=epochs // 2)
    resumed = resume_in_child(killed_dir, exp.quick)
    train_loss = [h["train_loss"] for h in history]
    val_acc = [h["val_accuracy"] for h in history]
    steps = checkpoint_steps(straight_dir)
    exp.record(
        wrong_label_fraction=NOISE,
        epochs=epochs,
        best_epoch=straight["best_epoch"],
        first_train_loss=train_loss[0],
        last_train_loss=train_loss[-1],
        last_train_accuracy=history[-1]["train_accuracy"],
        best_val_accuracy=max(val_acc),
        last_val_accuracy=val_acc[-1],
        checkpoints=steps,
        best_test_loss=straight["test_loss"],
        last_test_loss=straight["last_test_loss"],
        best_test_accuracy=straight["test_accuracy"],
        last_test_accuracy=straight["last_test_accuracy"],
        killed_after_epochs=done,
        params_sha256=straight["params_sha256"],
        resumed_params_sha256=resumed["params_sha256"],
    )
    resumed_history = read_history(killed_dir)
    resumed_from = resumed["resumed_from_epoch"]
    same_logs = [{k: h[k] for k in LOGGED} for h in resumed_history] == [
        {k: h[k] for k in LOGGED} for h in history
    ]
    exp.record(resumed_from_epoch=resumed_from, resumed_logs_equal=same_logs,
               grad_norm_per_epoch=[h["grad_norm"] for h in history])  # fmt: skip
    draw(exp, history, resumed_history, straight, epochs // 2, resumed_from)
    stable, unstable = step_grad_norms(STABLE_LR), step_grad_norms(UNSTABLE_LR)
    first = stable["grad_norm"][0]
    warn = first_step(unstable["grad_norm"], lambda g: g > 100 * first)
    nan_at = first_step(unstable["loss"], lambda v: not np.isfinite(v))
    exp.record(
        stable_lr=STABLE_LR,
        unstable_lr=UNSTABLE_LR,
        stable_max_grad_norm_over_first=max(stable["grad_norm"]) / first,
        unstable_step_past_100x=warn,
        unstable_step_nonfinite=nan_at,
    )
    if warn is not None and nan_at is not None:
        draw_stability(exp, stable, unstable, warn, nan_at)

    exp.check(
        train_loss[-1] < 0.1 * train_loss[0] and val_acc[-1] <= max(val_acc) - 0.05,
        "the logs show overfitting: train loss below 10% of its start, validation accuracy >= 5 "
        "points below its best",
    )
    exp.check(len(steps) >= 2, f"the run directory holds checkpoints (steps {steps})")
    exp.check(
        straight["test_accuracy"] - straight["last_test_accuracy"] >= 0.10,
        "the best-validation params beat the last epoch's by >= 10 points of test accuracy",
    )
    exp.check(
        killed and 1 <= done < epochs,
        f"the second run was killed by SIGKILL mid-training ({done} of {epochs} epochs logged)",
    )
    exp.check(
        resumed["params_sha256"] == straight["params_sha256"]
        and resumed["best_params_sha256"] == straight["best_params_sha256"]
        and resumed["test_accuracy"] == straight["test_accuracy"],
        "the killed and resumed run ends with the uninterrupted run's params, bit for bit "
        "(params_sha256, best_params_sha256, test accuracy)",
    )
    exp.check(
        same_logs and 0 < resumed_from < epochs,
        f"the resumed run (from epoch {resumed_from}) logs the uninterrupted run's train and "
        "validation metrics and gradient norm, epoch for epoch, bit for bit",
    )
    exp.check(
        max(stable["grad_norm"]) < 10 * first,
        f"at lr {STABLE_LR:g} the gradient norm stays below 10x its first step's over 40 steps "
        f"(at most {max(stable['grad_norm']) / first:.1f}x)",
    )
    exp.check(
        warn is not None and nan_at is not None and warn < nan_at,
        f"at lr {UNSTABLE_LR:g} the gradient norm passes 100x the first step's at step {warn}, "
        f"before the loss turns non-finite at step {nan_at}",
    )
    exp.finish()


if __name__ == "__main__":
    main()
