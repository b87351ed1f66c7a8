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
   accuracy.

Figure: train and validation loss and accuracy per epoch with the best epoch and the kill
marked; test accuracy of the best and the last parameters.

Run: ``python -m experiments.ch15_end_to_end [--quick] [--out DIR]``.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

from experiments.harness import Experiment, plt

CLAIM = (
    "Chapter 15: logging train and validation metrics reveals overfitting, checkpoints select "
    "the best-validation model (it beats the last epoch on test data) and recover from a failure "
    "(a killed and resumed run ends bit for bit where the uninterrupted run ends)."
)


NOISE = 0.4  # fraction of wrong training labels


def epochs_for(quick: bool) -> int:
    return 30 if quick else 60


def train_run(out_dir: str, quick: bool, resume: bool = False) -> dict:
    """One training run into ``out_dir``; also scores the last epoch's params on the test split.

    Returns ``summary.json`` plus ``last_test_loss`` and ``last_test_accuracy`` (also written to
    ``out_dir/last_epoch_test.json``). Runs in this process or in a child process alike.
    """
    from jaxnn.data import corrupt, load, pipeline
    from jaxnn.models import build
    from jaxnn.train import FitConfig, evaluate, fit

    splits, _ = pipeline.standardize(load("digits", seed=0))
    noisy, _ = corrupt.label_noise(splits.train, NOISE, num_classes=10, seed=0)
    splits = splits.replace(train=noisy)
    model = build("mlp", splits.info, hidden=(512, 512))
    cfg = FitConfig(
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
    subprocess.run(_child(out_dir, quick, resume=True), check=True, capture_output=True)
    summary = json.loads((out_dir / "summary.json").read_text())
    return {**summary, **json.loads((out_dir / "last_epoch_test.json").read_text())}


def read_history(out_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (out_dir / "metrics.jsonl").read_text().splitlines()]


def checkpoint_steps(out_dir: Path) -> list[int]:
    """The complete checkpoints in the run directory (``checkpoints/<step>/``)."""
    root = out_dir / "checkpoints"
    return sorted(int(p.name) for p in root.iterdir() if p.is_dir() and p.name.isdigit())


def draw(exp, history, straight, killed_at) -> None:
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.3), width_ratios=(1.3, 1.3, 1))
    epochs = [h["epoch"] for h in history]
    best = straight["best_epoch"]
    for ax, metric, unit in ((axes[0], "loss", "cross-entropy (nats)"),
                             (axes[1], "accuracy", "accuracy")):  # fmt: skip
        ax.plot(epochs, [h[f"train_{metric}"] for h in history], marker=".",
                label=f"train {metric} (40% wrong labels)")  # fmt: skip
        ax.plot(epochs, [h[f"val_{metric}"] for h in history], marker=".",
                label=f"validation {metric}")  # fmt: skip
        ax.axvline(best, color="C2", linestyle="--", label=f"best validation epoch {best}")
        ax.axvline(killed_at, color="C3", linestyle=":", label=f"SIGKILL after epoch {killed_at}")
        ax.set_xlabel("epoch")
        ax.set_ylabel(unit)
        ax.grid(alpha=0.3)
    axes[0].set_yscale("log")
    axes[0].set_title("the run memorizes the wrong labels")
    axes[0].legend(fontsize=8, loc="lower left")
    axes[1].axhline(0.1, color="gray", linewidth=0.8, label="chance (10 classes)")
    axes[1].set_title("validation accuracy peaks, then falls")
    axes[1].legend(fontsize=8)
    values = [straight["test_accuracy"], straight["last_test_accuracy"]]
    bars = axes[2].bar([f"best epoch ({best})", f"last epoch ({epochs[-1]})"], values,
                       color=["C2", "C3"])  # fmt: skip
    axes[2].bar_label(bars, fmt="%.3f")
    axes[2].axhline(0.1, color="gray", linewidth=0.8, label="chance")
    axes[2].set_ylim(0, 1.05)
    axes[2].set_ylabel("test accuracy")
    axes[2].set_title("checkpoint selection, scored on test data")
    axes[2].legend(fontsize=8, loc="upper right")
    exp.save(fig, "end_to_end.png")


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
    draw(exp, history, straight, epochs // 2)

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
    exp.finish()


if __name__ == "__main__":
    main()
