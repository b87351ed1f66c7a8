"""Chapter 14: common failure modes are diagnosable; each detector finds its injected fault.

The book's claim: "Neural networks fail in predictable ways that are often diagnosable." Here each
failure mode is injected on purpose (``jaxnn.data.corrupt`` for the data faults, a learning rate,
a training-set size or an initial scale for the training faults) and the matching detector of
``jaxnn.diagnostics`` runs on the faulty case and on a clean control. Asserted, for every fault:
the detector fires on the faulty case and stays quiet on the control.

- mislabeled examples (digits, 20% label noise; full run also 10% and 30%): the 20% highest-loss
  examples under an MLP trained briefly on the noisy labels (``suspicious_labels``) are
  mislabeled at least 2.5 times as often as the noise rate; the control scores the same model's
  losses under the true labels, whose top losses hit the noisy indices at about the noise rate;
- class imbalance (MNIST-1D, classes 5-9 kept at 20%): ``class_balance`` flags exactly the
  shrunk classes; the clean training split has none flagged;
- distribution shift (MNIST-1D validation split, severity 1 of each kind): ``distribution_shift``
  flags the noisy, rescaled and offset sets; the clean validation split is not flagged;
- spurious feature (MNIST-1D, a class pattern that agrees with the label in 90% of training
  examples, random in validation): ``spurious_feature_check`` flags every planted pattern and
  none on clean data;
- vanishing and exploding gradients (a 10-hidden-layer MLP on one batch): ``gradient_health``
  calls a sigmoid stack vanishing, a ReLU stack with 3x-scaled weights exploding, and a
  He-scaled ReLU stack healthy;
- underfitting and overfitting (real ``fit`` runs): ``fit_diagnosis`` calls an MLP trained with
  learning rate 1e-6 underfitting, a wide MLP on 100 digits overfitting, and an MLP trained on
  the full digits split healthy.

And the checklist as one command: ``jaxnn doctor`` (its engine,
``jaxnn.diagnostics.doctor.examine``) before training an MLP on digits names the learning rate
first for lr 10, vanishing gradients first for an 8-layer sigmoid stack, and finds nothing for
the default MLP at lr 1e-3.

Figures: each detector's score divided by its threshold (above 1 = fires) for the faulty case and
its control, and the loss curves of the three ``fit`` runs (``failure_modes.png``); the doctor's
learning-rate range test and its per-layer gradient norms for the three setups (``doctor.png``).

Run: ``python experiments/ch14_failure_modes.py [--quick] [--out DIR]``.
"""

from __future__ import annotations

import jax
import numpy as np
import optax

from experiments.harness import Experiment, fit_config
from experiments.style import PALETTE, legend_below, panels, split_legend, threshold_line, train_val
from jaxnn import diagnostics as D
from jaxnn.data import corrupt, load, pipeline
from jaxnn.diagnostics import doctor
from jaxnn.models import build, get
from jaxnn.train import fit

CLAIM = (
    "Chapter 14: failure modes are diagnosable; each detector fires on its injected fault "
    "(label noise, class imbalance, distribution shift, spurious feature, vanishing/exploding "
    "gradients, under/overfitting) and not on a clean control."
)


def _fit(splits, *, hidden, lr, epochs, n_train=None):
    if n_train is not None:
        splits = splits.replace(train=splits.train.take(range(n_train)))
    model = build("mlp", splits.info, hidden=hidden)
    cfg = fit_config(epochs=epochs, batch_size=50, lr=lr, progress=False, checkpoint=False)
    return model, fit(model, splits, cfg, verbose=False)


def label_noise_scores(digits, rate, epochs):
    """Precision of the top-loss flags against the record, and the true-label control."""
    noisy, record = corrupt.label_noise(digits.train, rate, num_classes=10, seed=0)
    model, result = _fit(digits.replace(train=noisy), hidden=(64,), lr=3e-3, epochs=epochs)
    logits, _ = model.apply(result.best_params, noisy.x, state=result.best_model_state)  # (N, C)
    wrong = set(record["indices"].tolist())

    def precision_recall(labels):
        loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels)  # (N,)
        flagged = np.asarray(D.suspicious_labels(loss, fraction=rate)).tolist()
        hits = sum(i in wrong for i in flagged)
        return hits / len(flagged), hits / len(wrong)

    precision, recall = precision_recall(noisy.y)
    control, _ = precision_recall(digits.train.y)
    return {"precision": precision, "recall": recall, "control_precision": control}


def gradient_verdicts(m1d):
    """gradient_health of three 10-hidden-layer MLPs on one MNIST-1D batch."""
    x, y = m1d.train.x[:128], m1d.train.y[:128]  # (B, 40), (B,)
    out = {}
    for case, activation, scale in (
        ("sigmoid", "sigmoid", 1.0),
        ("relu_x3", "relu", 3.0),
        ("relu_he", "relu", np.sqrt(2.0)),
    ):
        cfg = get("mlp").config_for(m1d.info, hidden=(32,) * 10, activation=activation)
        model = build("mlp", cfg)
        params, state = model.init(jax.random.key(0))
        params = jax.tree.map(lambda p, s=scale: p * s, params)

        def loss(p, model=model, state=state):
            logits, _ = model.apply(p, x, state=state)  # (B, C)
            return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

        out[case] = D.gradient_health(jax.grad(loss)(params))
    return out


def shift_ratios(exp, m1d):
    """Each kind of shift and a clean held-out split: ((weakest fault, control) / threshold,
    the detector's result per kind)."""
    shifts = {}
    for kind in corrupt.SHIFTS:
        shifted, _ = corrupt.distribution_shift(m1d.val, kind=kind, severity=1.0, seed=0)
        shifts[kind] = D.distribution_shift(m1d.train.x, shifted.x)
    shifts["clean"] = D.distribution_shift(m1d.train.x, m1d.val.x)
    for kind, s in shifts.items():
        exp.record(
            **{
                f"shift_{kind}_mean_score": round(s.mean_score, 4),
                f"shift_{kind}_scale_score": round(s.scale_score, 4),
            }
        )

    def shift_ratio(s):
        return max(s.mean_score / 0.25, s.scale_score / 0.2)

    weakest = min(shift_ratio(shifts[k]) for k in corrupt.SHIFTS)
    return (weakest, shift_ratio(shifts["clean"])), shifts


def main(argv=None) -> None:
    exp = Experiment("ch14_failure_modes", CLAIM, argv)
    quick = exp.quick
    if quick:
        exp.notes.append("--quick: label noise 20% only, 6 epochs; fit runs of 6/40/8 epochs")
    digits, _ = pipeline.standardize(load("digits", seed=0))
    m1d, _ = pipeline.standardize(load("mnist1d", seed=0))
    ratios = {}  # detector -> (fault score / threshold, control score / threshold)

    # mislabeled examples
    rates = (0.2,) if quick else (0.1, 0.2, 0.3)
    noise = {r: label_noise_scores(digits, r, 6 if quick else 10) for r in rates}
    for r, s in noise.items():
        exp.record(
            **{f"label_noise_{r}_{k}": round(v, 4) for k, v in s.items()},
        )
    lift = noise[0.2]["precision"] / (2.5 * 0.2), noise[0.2]["control_precision"] / (2.5 * 0.2)
    ratios["suspicious_labels\n(precision / 2.5 rate)"] = lift

    # class imbalance
    imbalanced, imb_rec = corrupt.class_imbalance(m1d.train, 0.2, seed=0)
    faulty, clean = D.class_balance(imbalanced.y, 10), D.class_balance(m1d.train.y, 10)
    exp.record(
        imbalance_flagged=list(faulty.flagged_classes),
        imbalance_minority=list(imb_rec["minority_classes"]),
        imbalance_ratio=round(faulty.imbalance_ratio, 3),
        clean_imbalance_ratio=round(clean.imbalance_ratio, 3),
        clean_flagged=list(clean.flagged_classes),
    )
    ratios["class_balance\n(max/min count / 2)"] = (
        faulty.imbalance_ratio * 0.5,
        clean.imbalance_ratio * 0.5,
    )

    # distribution shift
    ratios["distribution_shift\n(weakest kind)"], shifts = shift_ratios(exp, m1d)

    # spurious feature
    (sp_train, sp_val), rec = corrupt.spurious_feature(m1d.train, m1d.val, strength=0.9, seed=0)
    args = {"num_classes": 10, "directions": rec["patterns"]}
    spurious = D.spurious_feature_check(sp_train.x, sp_train.y, sp_val.x, sp_val.y, **args)
    control = D.spurious_feature_check(m1d.train.x, m1d.train.y, m1d.val.x, m1d.val.y, **args)
    exp.record(
        spurious_flagged=list(spurious.flagged_features),
        spurious_min_gap=round(min(spurious.gap), 4),
        spurious_control_max_gap=round(max(control.gap), 4),
        spurious_train_agreement=round(rec["train_agreement"], 4),
        spurious_test_agreement=round(rec["test_agreement"], 4),
    )
    ratios["spurious_feature\n(gap / 0.3)"] = (
        min(spurious.gap) / 0.3,
        max(control.gap) / 0.3,
    )

    # gradients
    grads = gradient_verdicts(m1d)
    for case, g in grads.items():
        exp.record(
            **{
                f"grad_{case}_ratio": g.ratio,
                f"grad_{case}_max_norm": g.max_norm,
                f"grad_{case}_verdict": g.verdict,
            }
        )
    ratios["vanishing grads\n(1e-3 / ratio)"] = (
        1e-3 / grads["sigmoid"].ratio,
        1e-3 / grads["relu_he"].ratio,
    )
    ratios["exploding grads\n(max norm / 1e3)"] = (
        grads["relu_x3"].max_norm / 1e3,
        grads["relu_he"].max_norm / 1e3,
    )

    # underfitting, overfitting, healthy
    runs = {
        "underfitting": _fit(digits, hidden=(64,), lr=1e-6, epochs=6 if quick else 10)[1],
        "overfitting": _fit(digits, hidden=(256, 256), lr=1e-3, epochs=40, n_train=100)[1],
        "healthy": _fit(digits, hidden=(64,), lr=3e-3, epochs=8 if quick else 15)[1],
    }
    verdicts = {}
    for case, result in runs.items():
        diag = D.fit_diagnosis(result.history)
        verdicts[case] = diag.verdict
        exp.record(
            **{
                f"fit_{case}_verdict": diag.verdict,
                f"fit_{case}_final_train_accuracy": round(diag.final_train_accuracy, 4),
                f"fit_{case}_final_val_accuracy": round(diag.final_val_accuracy, 4),
                f"fit_{case}_val_loss_rise": round(diag.val_loss_rise, 4),
            }
        )

    figs, (ax, ax2) = panels(2, size=(4.2, 4.0))
    names = list(ratios)
    pos = np.arange(len(names))
    ax.barh(pos - 0.2, [ratios[n][0] for n in names], 0.4, label="injected fault",
            color=PALETTE[1])  # fmt: skip
    ax.barh(pos + 0.2, [ratios[n][1] for n in names], 0.4, label="clean control",
            color=PALETTE[0])  # fmt: skip
    threshold_line(ax, 1.0, "threshold (fires above)", horizontal=False)
    ax.set_xscale("log")
    ax.set_yticks(pos, [n.split("\n")[0].replace("_", " ") for n in names])
    ax.invert_yaxis()
    ax.set_xlabel("score / threshold")
    ax.set_title("Detectors: fault vs clean control")
    legend_below(ax, ncols=2)
    for (case, result), color in zip(runs.items(), PALETTE, strict=False):
        epochs = np.arange(1, len(result.history) + 1)
        train_val(ax2, epochs, [h["train_loss"] for h in result.history],
                  [h["val_loss"] for h in result.history], color=color,
                  label=f"{case}: called {verdicts[case]}")  # fmt: skip
    ax2.set_yscale("log")
    ax2.set_xlabel("epoch")
    ax2.set_ylabel("cross-entropy (nats)")
    ax2.set_title("fit_diagnosis on three runs")
    split_legend(ax2, below=True)
    exp.save(
        figs,
        "failure_modes.png",
        caption="Every detector scores its injected fault above its threshold and its clean "
        "control below; fit_diagnosis names the underfitting, overfitting and healthy runs.",
        alt=[
            "Horizontal bars of each detector's score over its threshold on a log axis: the "
            "fault's bar beyond 1, the clean control's short of it, for all seven detectors.",
            "Training (solid) and validation (dashed) loss of three digits runs: learning rate "
            "1e-6 barely moves, 100 examples overfit, the full set trains well.",
        ],
    )
    doctor_reports = doctor_section(exp)

    for r, s in noise.items():
        exp.check(
            s["precision"] > 2.5 * r,
            f"label noise {r:.0%}: top-loss precision {s['precision']:.2f} > 2.5 x noise rate",
        )
    exp.check(
        noise[0.2]["control_precision"] < 2 * 0.2,
        "label noise control: true-label top losses hit the noisy indices < 2 x noise rate",
    )
    exp.check(
        list(faulty.flagged_classes) == list(imb_rec["minority_classes"]),
        f"class_balance flags exactly the shrunk classes {list(imb_rec['minority_classes'])}",
    )
    exp.check(clean.ok, "class_balance flags nothing on the clean split")
    for kind in corrupt.SHIFTS:
        exp.check(not shifts[kind].ok, f"distribution_shift flags the {kind} shift")
    exp.check(shifts["clean"].ok, "distribution_shift passes the clean val split")
    exp.check(
        sorted(spurious.flagged_features) == list(range(10)),
        "spurious_feature_check flags all 10 planted patterns",
    )
    exp.check(control.ok, "spurious_feature_check flags nothing on clean data")
    exp.check(grads["sigmoid"].vanishing, "gradient_health: sigmoid stack vanishes")
    exp.check(grads["relu_x3"].exploding, "gradient_health: 3x-scaled ReLU stack explodes")
    exp.check(grads["relu_he"].ok, "gradient_health: He-scaled ReLU stack is healthy")
    for case, verdict in verdicts.items():
        exp.check(verdict == case, f"fit_diagnosis calls the {case} run {case}")
    exp.check(doctor_reports["clean"].ok, "jaxnn doctor finds nothing on the default MLP")
    for case, check in (("lr 10", "lr_range"), ("sigmoid x8", "gradients")):
        top = doctor_reports[case].top
        exp.check(
            top is not None and top.check == check, f"jaxnn doctor names {check} first for {case}"
        )
    exp.finish()


DOCTOR_SETUPS = {
    "clean": {},
    "lr 10": {"lr": 10.0},
    "sigmoid x8": {"model_config": {"hidden": (32,) * 8, "activation": "sigmoid"}},
}


def doctor_section(exp):
    """``jaxnn doctor`` before training three digits MLPs; draws its LR test and gradient norms."""
    checks = ["lr_range", "gradients"]
    reports = {
        case: doctor.examine("mlp", "digits", checks=checks, progress=False, **setup)
        for case, setup in DOCTOR_SETUPS.items()
    }
    for case, report in reports.items():
        exp.record(
            **{f"doctor_{case.replace(' ', '_')}_top": report.top.check if report.top else "none"}
        )
    figs, (ax1, ax2) = panels(2, size=(4.4, 3.8))
    for (case, report), color in zip(reports.items(), PALETTE, strict=False):
        lr = report.details["lr_range"]
        wide = {"lw": 5, "alpha": 0.45} if case == "clean" else {}  # lr 10 has the same model
        ax1.plot(lr.lrs, lr.smoothed, label=f"{case}: {lr.verdict}", color=color, **wide)
        if lr.lr:
            ax1.axvline(lr.lr, color=color, linestyle=":")
        norms = report.details["gradients"].norms  # {layer: norm}
        ax2.plot(range(len(norms)), list(norms.values()), "o-", label=case, color=color, **wide)
    ax1.set_xscale("log")
    ax1.set_xlabel("learning rate (dotted: the rate judged)")
    ax1.set_ylabel("smoothed training loss")
    ax1.set_title("doctor: learning-rate range test")
    legend_below(ax1)
    ax2.set_yscale("log")
    ax2.set_xlabel("layer (input side first)")
    ax2.set_ylabel("gradient norm")
    ax2.set_title("doctor: gradient norms at init")
    legend_below(ax2)
    exp.save(
        figs,
        "doctor.png",
        caption="The doctor's range test finds that lr 10 diverges for the default MLP, and its "
        "per-layer gradient norms show the sigmoid stack's vanishing toward the input.",
        alt=[
            "Smoothed loss against the swept learning rate for three setups, with the judged "
            "rate dotted: the sweep reaches 10x each judged rate, and lr 10 lies past the loss "
            "minimum.",
            "Gradient norm per layer at initialization for three setups on a log axis: the "
            "sigmoid stack's norms fall by orders of magnitude toward the input.",
        ],
    )
    return reports


if __name__ == "__main__":
    main()
