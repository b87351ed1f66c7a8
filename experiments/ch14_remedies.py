"""Chapter 14: each remedy the book names fixes the fault it answers.

The book's claims: "Vanishing or exploding gradients make deep or recurrent models train slowly or
unstably; gradient clipping, normalization, residual connections, and better initialization can
help." "Dataset problems are equally serious: mislabeled examples, class imbalance, ..." "Numerical
issues such as NaNs, saturated activations, and inappropriate learning rates can stop learning
entirely." "What is the first thing to check when training fails? Inspect the data and labels,
then verify that loss decreases on a tiny subset of examples."

Each fault is injected, detected by a check of ``jaxnn`` (the divergence guard of ``fit``,
:mod:`jaxnn.diagnostics`), then remedied; asserted for each: the fault shows, and after the
remedy the check passes and the score it hurt recovers. On the 8x8 ``digits`` (MLPs, Adam unless
said otherwise):

1. **A pipeline bug, on a tiny subset.** An indexing slip builds every batch from the first
   example (``x[[0] * B]``): :func:`jaxnn.diagnostics.overfit_tiny_batch` on 16 examples fails
   (the loss cannot fall for 16 different labels on one input); with the fix it memorizes them.
2. **Exploding updates.** SGD at learning rate 1.0 on a 512-512 MLP diverges (``fit`` stops it:
   ``stopped_reason == "diverged"``); the same run with the gradient clipped to norm 1
   (``clip_norm=1``) completes with validation accuracy at least 90%.
3. **Vanishing gradients.** A 20-block ReLU network (width 64) whose weights start at half the
   He scale: activations and gradients shrink layer by layer, so
   :func:`jaxnn.diagnostics.gradient_health` calls it vanishing and it barely trains. Three
   remedies, each alone: the He initialization, layer normalization in every block, residual
   connections (``h + relu(W h)``); with each, ``gradient_health`` is no longer vanishing and the
   network learns faster: in half the epochs it passes the best validation accuracy the fault
   reaches in all of them (a margin at a fixed budget would depend on the budget: the fault
   creeps up as it trains, to 0.72 in 20 epochs).
4. **Learning rates** (plain SGD, ``fit``'s loss-growth guard set out of the way to see where a
   run goes). Learning rate 10 stops learning entirely: its first steps leave every hidden ReLU
   saturated at zero on every training image (dead), and the validation accuracy sits at chance
   (at most 20%); 1e-6 learns nothing in the budget
   (:func:`jaxnn.diagnostics.fit_diagnosis`: underfitting); the rate that
   :func:`jaxnn.diagnostics.lr_range_test` suggests trains a healthy run (at least 90%).
5. **Mislabeled examples.** With 30% of the training labels wrong, dropping the 30% of examples
   with the highest loss under a briefly trained model (:func:`jaxnn.diagnostics.suspicious_labels`)
   and retraining raises the final validation accuracy by at least 5 points.
6. **Class imbalance.** With classes 5-9 cut to 5% of their examples
   (:func:`jaxnn.data.corrupt.class_imbalance`; :func:`jaxnn.diagnostics.class_balance` flags
   them), resampling every class to the size of the largest raises the mean recall of the
   shrunk classes on the validation split by at least 10 points.

The spurious-correlation fault and its remedy are ``ch14_shortcut_fails_in_deployment``; leakage
and inconsistent preprocessing are ``ch09_preprocessing``.

``--quick`` trains fewer epochs (the same assertions).

Figure: each fault's score against its remedies'; the vanishing network's per-layer gradient norms
with each remedy.

Run: ``python -m experiments.ch14_remedies [--quick] [--out DIR]``.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax

from experiments.harness import Experiment, fit_config
from experiments.style import PALETTE, legend_below, panels
from jaxnn import diagnostics as D
from jaxnn import initializers, losses
from jaxnn.data import corrupt, load, pipeline
from jaxnn.layers import dense, init_dense, init_layer_norm, layer_norm
from jaxnn.models import Model, build
from jaxnn.train import fit

CLAIM = (
    "Chapter 14: each remedy fixes the fault it answers: the fixed pipeline memorizes a tiny "
    "subset the buggy one cannot; clipping stops a divergence; He initialization, layer norm and "
    "residual connections each revive a vanishing network; a range-test learning rate trains "
    "where 10 (every ReLU dead) and 1e-6 fail; dropping flagged labels and rebalancing classes "
    "recover accuracy."
)


@dataclasses.dataclass(frozen=True)
class BlocksConfig:
    """A deep ReLU network of ``depth`` blocks of ``width`` units (Chapter 14's remedies)."""

    input_dim: int
    num_classes: int
    depth: int = 20
    width: int = 64
    init_scale: float = 1.0  # times the He standard deviation
    norm: bool = False  # layer norm before each block's ReLU
    residual: bool = False  # h + relu(W h) instead of relu(W h)


def blocks_model(cfg: BlocksConfig) -> Model:
    """The network as a :class:`jaxnn.models.Model`, so that ``fit`` trains it."""

    def w_init(key, shape, dtype):
        return cfg.init_scale * initializers.he_normal(key, shape, dtype)

    def init(key):
        keys = jax.random.split(key, cfg.depth + 2)
        params = {"input": init_dense(keys[0], cfg.input_dim, cfg.width, w_init=w_init)}
        for i in range(cfg.depth):
            params[f"block_{i}"] = {"dense": init_dense(keys[i + 1], cfg.width, cfg.width,
                                                        w_init=w_init)}  # fmt: skip
            if cfg.norm:
                params[f"block_{i}"]["norm"] = init_layer_norm(cfg.width)
        params["output"] = init_dense(keys[-1], cfg.width, cfg.num_classes)
        return params, {}

    def apply(params, x, *, state=None, train=False, key=None):
        h = jax.nn.relu(dense(params["input"], x.reshape(x.shape[0], -1)))  # (B, width)
        for i in range(cfg.depth):
            block = params[f"block_{i}"]
            z = dense(block["dense"], h)
            if cfg.norm:
                z = layer_norm(block["norm"], z)
            z = jax.nn.relu(z)
            h = h + z if cfg.residual else z
        return dense(params["output"], h), {}

    return Model(name="blocks", cfg=cfg, init=init, apply=apply)


def _fit(model, splits, **options):
    cfg = fit_config(batch_size=50, progress=False, checkpoint=False, **options)
    return fit(model, splits, cfg, verbose=False)


def tiny_subset(digits) -> dict:
    """overfit_tiny_batch on 16 examples, with the buggy and the fixed batch."""
    model = build("mlp", digits.info, hidden=(64,))
    x, y = digits.train.x[:16], digits.train.y[:16]
    tx = optax.adam(1e-2)
    buggy = D.overfit_tiny_batch(model, tx, (x[[0] * len(x)], y), steps=200)
    fixed = D.overfit_tiny_batch(model, tx, (x, y), steps=200)
    return {"buggy": buggy, "fixed": fixed}


def exploding(digits, epochs) -> dict:
    model = build("mlp", digits.info, hidden=(512, 512))
    runs = {clip: _fit(model, digits, epochs=epochs, lr=1.0, optimizer="sgd", clip_norm=clip)
            for clip in (0.0, 1.0)}  # fmt: skip
    return {"fault": runs[0.0].summary, "remedy": runs[1.0].summary}


def vanishing(digits, epochs) -> dict:
    base = BlocksConfig(input_dim=64, num_classes=10, init_scale=0.5)
    cases = {
        "fault: half He scale": base,
        "He initialization": dataclasses.replace(base, init_scale=1.0),
        "layer norm": dataclasses.replace(base, norm=True),
        "residual connections": dataclasses.replace(base, residual=True),
    }
    x, y = jnp.asarray(digits.train.x[:256]), jnp.asarray(digits.train.y[:256])
    out = {}
    for name, cfg in cases.items():
        model = blocks_model(cfg)
        params, _ = model.init(jax.random.PRNGKey(0))
        grads = jax.grad(lambda p, m=model: losses.cross_entropy(m.apply(p, x)[0], y))(params)
        health = D.gradient_health(grads)
        order = ["input", *(f"block_{i}" for i in range(cfg.depth)), "output"]
        norms = [float(optax.global_norm(grads[k])) for k in order]  # input side first
        result = _fit(model, digits, epochs=epochs, lr=1e-3)
        out[name] = {"health": health, "norms": norms,
                     "val_accuracy": result.summary["best_val_accuracy"],
                     "val_curve": [r["val_accuracy"] for r in result.history]}  # fmt: skip
    return out


def learning_rates(digits, epochs) -> dict:
    """Plain SGD at lr 10 (guarded only against non-finite values), at 1e-6, and at the rate
    the range test suggests; with the share of hidden ReLUs dead on every training image."""
    model = build("mlp", digits.info, hidden=(64,))
    report = D.lr_range_test(model, digits.train, optimizer="sgd")
    rates = {"lr 10": 10.0, "lr 1e-6": 1e-6, "range test": float(report.suggested_lr)}
    out = {"suggested_lr": rates["range test"]}
    for name, lr in rates.items():
        result = _fit(model, digits, epochs=epochs, lr=lr, optimizer="sgd",
                      divergence_factor=1e30)  # fmt: skip
        verdict = D.fit_diagnosis(result.history).verdict if result.history else "no epoch"
        first = result.state.params["dense_0"]
        hidden = np.maximum(
            0.0, digits.train.x.reshape(len(digits.train), -1) @ first["w"] + first["b"]
        )  # (N, 64): the ReLU layer on every training image
        out[name] = {"summary": result.summary, "verdict": verdict,
                     "dead_units": float(np.mean(hidden.max(0) == 0.0))}  # fmt: skip
    return out


def mislabeled(digits, epochs) -> dict:
    noisy, record = corrupt.label_noise(digits.train, 0.3, num_classes=10, seed=0)
    model = build("mlp", digits.info, hidden=(64,))
    probe = _fit(model, digits.replace(train=noisy), epochs=max(3, epochs // 3), lr=3e-3)
    logits, _ = model.apply(probe.best_params, noisy.x, state=probe.best_model_state)
    per_example = optax.softmax_cross_entropy_with_integer_labels(logits, noisy.y)
    flagged = np.asarray(D.suspicious_labels(per_example, fraction=0.3))
    keep = np.setdiff1d(np.arange(len(noisy)), flagged)
    scores = {}
    for name, train in (("fault", noisy), ("remedy", noisy.take(keep))):
        result = _fit(model, digits.replace(train=train), epochs=epochs, lr=3e-3)
        scores[name] = result.history[-1]["val_accuracy"]
    scores["flag_precision"] = float(np.isin(flagged, record["indices"]).mean())
    return scores


def imbalance(digits, epochs) -> dict:
    shrunk, record = corrupt.class_imbalance(digits.train, 0.05, seed=0)
    minority = list(record["minority_classes"])
    counts = np.bincount(shrunk.y, minlength=10)
    rng = np.random.default_rng(0)
    balanced = np.concatenate(
        [rng.choice(np.flatnonzero(shrunk.y == c), counts.max(), replace=True) for c in range(10)]
    )
    model = build("mlp", digits.info, hidden=(64,))
    out = {"flagged": list(D.class_balance(shrunk.y, 10).flagged_classes), "minority": minority}
    for name, train in (("fault", shrunk), ("remedy", shrunk.take(balanced))):
        result = _fit(model, digits.replace(train=train), epochs=epochs, lr=3e-3)
        logits, _ = model.apply(result.best_params, digits.val.x, state=result.best_model_state)
        pred = np.asarray(logits).argmax(-1)
        out[name] = float(np.mean([np.mean(pred[digits.val.y == c] == c) for c in minority]))
    return out


def draw(exp, rows, vanish):
    figs, (ax, bx) = panels(2, size=(4.6, 4.4))
    names = list(rows)
    pos = np.arange(len(names))
    for shift, i, color, label in ((-0.2, 0, PALETTE[1], "fault"), (0.2, 1, PALETTE[2], "remedy")):
        bars = ax.barh(pos + shift, [rows[n][i] for n in names], 0.4, color=color, label=label)
        ax.bar_label(bars, fmt="%.2f")
    ax.set_yticks(pos, names)
    ax.invert_yaxis()
    ax.set_xlim(0, 1.25)
    ax.set_xlabel("score (see the assertions)")
    ax.set_title("Faults and their remedies")
    legend_below(ax, ncols=2)
    for (name, case), color in zip(vanish.items(), PALETTE[1:], strict=False):
        verdict = "vanishing" if case["health"].vanishing else "healthy"
        bx.plot(range(len(case["norms"])), case["norms"], "o-", ms=3, color=color,
                label=f"{name} ({verdict})")  # fmt: skip
    bx.set_yscale("log")
    bx.set_xlabel("layer: input, 20 blocks, output")
    bx.set_ylabel("gradient norm at initialization")
    bx.set_title("Reviving a vanishing network")
    legend_below(bx)
    exp.save(
        figs,
        "remedies.png",
        caption="Every fault's bar (vermillion) is short and its remedy's (green) long; in the "
        "20-block network the gradient that reaches the first layers is orders of magnitude "
        "smaller than at the top, until any one of the three remedies is applied.",
        alt=[
            "Horizontal bars of each fault's score beside its remedy's: the tiny-subset check, "
            "the divergence, the vanishing network, the learning rates, the mislabeled "
            "examples and the class imbalance; each remedy's bar is longer.",
            "Per-layer gradient norms at initialization of the 20-block network on a log axis: "
            "the fault's norms fall by orders of magnitude toward the input, each remedy's "
            "stay level.",
        ],
    )


def main(argv=None) -> None:
    exp = Experiment("ch14_remedies", CLAIM, argv)
    epochs = 10 if exp.quick else 20
    if exp.quick:
        exp.notes.append("--quick: 10 epochs per run (full: 20)")
    digits, _ = pipeline.standardize(load("digits", seed=0))
    tiny = tiny_subset(digits)
    boom = exploding(digits, epochs)
    vanish = vanishing(digits, epochs)
    lrs = learning_rates(digits, epochs)
    labels = mislabeled(digits, 3 * epochs)
    classes = imbalance(digits, epochs)
    fault_v = vanish["fault: half He scale"]
    remedies = [k for k in vanish if not k.startswith("fault")]
    exp.record(
        tiny_subset_buggy=tiny["buggy"].verdict,
        tiny_subset_fixed=tiny["fixed"].verdict,
        tiny_subset_final_loss={k: r.final_loss for k, r in tiny.items()},
        sgd_lr1_stopped={
            "no clipping": boom["fault"]["stopped_reason"],
            "clip_norm 1": boom["remedy"]["stopped_reason"],
        },  # fmt: skip
        clipped_val_accuracy=boom["remedy"]["best_val_accuracy"],
        vanishing_val_accuracy={k: v["val_accuracy"] for k, v in vanish.items()},
        vanishing_first_over_last_ratio={k: v["health"].ratio for k, v in vanish.items()},
        range_test_lr=lrs["suggested_lr"],
        dead_relu_share={k: lrs[k]["dead_units"] for k in ("lr 10", "lr 1e-6", "range test")},
        lr_verdicts={k: lrs[k]["verdict"] for k in ("lr 10", "lr 1e-6", "range test")},
        lr_val_accuracy={
            k: lrs[k]["summary"]["best_val_accuracy"] for k in ("lr 10", "lr 1e-6", "range test")
        },  # fmt: skip
        mislabeled_val_accuracy={"30% wrong": labels["fault"], "flagged dropped": labels["remedy"]},
        mislabeled_flag_precision=labels["flag_precision"],
        minority_recall={"imbalanced": classes["fault"], "resampled": classes["remedy"]},
    )
    rows = {
        "tiny subset:\nloss falls": (1.0 - tiny["buggy"].final_loss / tiny["buggy"].initial_loss,
                                     1.0 - tiny["fixed"].final_loss / tiny["fixed"].initial_loss),
        "SGD lr 1:\nval accuracy": (boom["fault"]["best_val_accuracy"] or 0.0,
                                    boom["remedy"]["best_val_accuracy"]),
        "vanishing:\nval accuracy": (fault_v["val_accuracy"],
                                     min(vanish[k]["val_accuracy"] for k in remedies)),
        "lr 1e-6:\nval accuracy": (lrs["lr 1e-6"]["summary"]["best_val_accuracy"],
                                   lrs["range test"]["summary"]["best_val_accuracy"]),
        "30% wrong labels:\nval accuracy": (labels["fault"], labels["remedy"]),
        "imbalance:\nminority recall": (classes["fault"], classes["remedy"]),
    }  # fmt: skip
    draw(exp, rows, vanish)

    exp.check(
        tiny["buggy"].verdict == "fails" and tiny["fixed"].verdict == "overfits",
        "tiny subset: with every batch built from the first example the 16 labels cannot be "
        "memorized; the fixed pipeline memorizes them",
    )
    exp.check(
        boom["fault"]["stopped_reason"] == "diverged"
        and boom["remedy"]["stopped_reason"] == "completed"
        and boom["remedy"]["best_val_accuracy"] >= 0.9,
        f"SGD at lr 1 diverges; clipping the gradient to norm 1 completes at "
        f"{boom['remedy']['best_val_accuracy']:.3f} validation accuracy (>= 0.9)",
    )
    exp.check(
        fault_v["health"].vanishing,
        f"the 20-block network at half the He scale has vanishing gradients (first/last "
        f"{fault_v['health'].ratio:.1e})",
    )
    half = epochs // 2
    for k in remedies:
        early = max(vanish[k]["val_curve"][:half])
        exp.check(
            not vanish[k]["health"].vanishing and early > fault_v["val_accuracy"],
            f"{k} alone revives it: gradients no longer vanish, and in half the epochs ({half}) "
            f"it reaches {early:.3f} validation accuracy, above the fault's best in all "
            f"{epochs} ({fault_v['val_accuracy']:.3f})",
        )
    lr10 = lrs["lr 10"]
    exp.check(
        lr10["dead_units"] == 1.0 and (lr10["summary"]["best_val_accuracy"] or 0.0) <= 0.2,
        "lr 10 stops learning entirely: every hidden ReLU is dead on every training image and "
        f"the validation accuracy stays at {lr10['summary']['best_val_accuracy']:.3f} (<= 0.2)",
    )
    exp.check(
        lrs["lr 1e-6"]["verdict"] == "underfitting",
        "lr 1e-6 learns nothing in the budget: fit_diagnosis calls it underfitting",
    )
    good = lrs["range test"]
    exp.check(
        good["verdict"] == "healthy" and good["summary"]["best_val_accuracy"] >= 0.9,
        f"the range test's suggestion (lr {lrs['suggested_lr']:.2g}) trains a healthy run at "
        f"{good['summary']['best_val_accuracy']:.3f} validation accuracy",
    )
    exp.check(
        labels["remedy"] >= labels["fault"] + 0.05,
        f"dropping the flagged 30% raises the final validation accuracy from "
        f"{labels['fault']:.3f} to {labels['remedy']:.3f} (>= 5 points)",
    )
    exp.check(
        classes["flagged"] == classes["minority"] and classes["remedy"] >= classes["fault"] + 0.1,
        f"class_balance flags the shrunk classes {classes['minority']}; resampling raises their "
        f"mean recall from {classes['fault']:.3f} to {classes['remedy']:.3f} (>= 10 points)",
    )
    exp.finish()


if __name__ == "__main__":
    main()
