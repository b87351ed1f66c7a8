"""Chapter 10: dense layers pay per pixel on images; on tabular data an MLP is strong.

The book's claims: "Why can dense layers be inefficient for images? They do not exploit local
spatial structure, so they may require many parameters to learn simple visual patterns." "Are
MLPs obsolete? No; they remain strong for tabular data."

Measured here:

1. Parameter count (``jaxnn.models.param_count`` of the initialized params) of an MLP with two
   hidden layers of 256 and of the default CNN (three 5x5 convolutions of 32 filters with 2x2
   pooling, a dense head of 128) on square one-channel images of side 8 to 128. Asserted: the
   MLP's first layer costs exactly ``(H W + 1) 256`` (every pixel wired to every hidden unit),
   the CNN's convolutions cost the same at every image size (shared filters), and on 28x28
   images (MNIST) the MLP has more than twice the CNN's parameters.
2. Tabular data (``synthetic:moons`` and ``synthetic:xor``; the full run adds
   ``synthetic:spirals`` and two more seeds): an MLP (2-64-64-C) against a linear classifier
   (the same code with no hidden layer) and a random forest of 200 trees (scikit-learn), the
   usual strong baseline on tables. Asserted on every set: the MLP beats the linear model by at
   least 8 points of test accuracy and comes within 3 points of the forest (or beats it).

Figure: parameters against image side; test accuracy of the three models on each table.

Run: ``python -m experiments.ch10_mlp_images_vs_tables [--quick] [--out DIR]``.
"""

from __future__ import annotations

import types

import jax
import numpy as np

from experiments.harness import Experiment, plt
from jaxnn.data import load, pipeline
from jaxnn.models import build, get, param_count
from jaxnn.train import FitConfig, fit

CLAIM = (
    "Chapter 10: a dense layer wires every pixel to every unit, so an MLP needs many more "
    "parameters than a CNN on images (and more as the image grows), while on tabular data an "
    "MLP is strong: far above a linear model and on par with a random forest."
)

SIDES = (8, 16, 28, 32, 64, 128)
HIDDEN = 256
TABLES = {
    "synthetic:moons": {"noise": 0.25},
    "synthetic:xor": {"noise": 0.05},
    "synthetic:spirals": {"noise": 0.05},
}


def count_params(name: str, side: int) -> dict:
    """Parameters of the MLP or CNN for ``side x side x 1`` images, without allocating them."""
    info = types.SimpleNamespace(input_shape=(side, side, 1), num_classes=10)
    overrides = {"hidden": (HIDDEN, HIDDEN)} if name == "mlp" else {}
    cfg = get(name).config_for(info, **overrides)
    shapes = jax.eval_shape(lambda: build(name, cfg).init(jax.random.PRNGKey(0))[0])
    if name == "mlp":
        first = param_count(shapes["dense_0"])
    else:
        first = param_count({k: v for k, v in shapes.items() if k.startswith("conv")})
    return {"total": param_count(shapes), "part": first}


def image_params() -> dict:
    """``{model: {"total": [...], "part": [...]}}`` over :data:`SIDES`."""
    out = {}
    for name in ("mlp", "cnn"):
        counts = [count_params(name, side) for side in SIDES]
        out[name] = {k: [c[k] for c in counts] for k in ("total", "part")}
    return out


def table_scores(name: str, seed: int, epochs: int) -> dict:
    """Test accuracy of a linear model, an MLP and a random forest on one synthetic table."""
    from sklearn.ensemble import RandomForestClassifier

    splits, _ = pipeline.standardize(load(name, seed=seed, n=1000, **TABLES[name]))
    cfg = FitConfig(
        epochs=epochs, batch_size=32, lr=1e-2, seed=seed, progress=False, checkpoint=False
    )
    scores = {}
    for label, hidden in (("linear", ()), ("mlp", (64, 64))):
        model = build("mlp", splits.info, hidden=hidden)
        scores[label] = fit(model, splits, cfg, verbose=False).summary["test_accuracy"]
    test = splits.test.unseal("ch10: score the random-forest baseline")
    forest = RandomForestClassifier(n_estimators=200, random_state=seed)
    forest.fit(np.concatenate([splits.train.x, splits.val.x]),
               np.concatenate([splits.train.y, splits.val.y]))  # fmt: skip
    scores["forest"] = float(forest.score(test.x, test.y))
    return scores


def draw(exp, params: dict, tables: dict) -> None:
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 4.5))
    ax1.plot(SIDES, params["mlp"]["total"], "o-", color="C3", label="MLP, all layers")
    ax1.plot(SIDES, params["mlp"]["part"], "o--", color="C3", alpha=0.6, label="MLP, first layer")
    ax1.plot(SIDES, params["cnn"]["total"], "s-", color="C0", label="CNN, all layers")
    ax1.plot(SIDES, params["cnn"]["part"], "s--", color="C0", alpha=0.6, label="CNN, convolutions")
    ax1.axvline(28, color="gray", linestyle=":", label="28x28 (MNIST)")
    ax1.set_xscale("log", base=2)
    ax1.set_yscale("log")
    ax1.set_xticks(SIDES, [str(s) for s in SIDES])
    ax1.set_xlabel("image side (pixels, one channel)")
    ax1.set_ylabel("trainable parameters")
    ax1.set_title("parameters on images")
    ax1.grid(alpha=0.3, which="both")
    ax1.legend(fontsize=8)
    labels = list(tables)
    width = 0.27
    for i, model in enumerate(("linear", "mlp", "forest")):
        values = [tables[k][model] for k in labels]
        bars = ax2.bar(np.arange(len(labels)) + (i - 1) * width, values, width, label=model)
        ax2.bar_label(bars, fmt="%.2f", fontsize=8)
    ax2.axhline(0.5, color="gray", linestyle="--", label="chance")
    ax2.set_xticks(range(len(labels)), labels)
    ax2.set_ylim(0, 1.15)
    ax2.set_ylabel("test accuracy")
    ax2.set_title("tabular data: MLP vs linear vs random forest")
    ax2.legend(loc="upper center", ncol=4, fontsize=8)
    exp.save(fig, "mlp_images_vs_tables.png")


def main(argv=None) -> None:
    exp = Experiment("ch10_mlp_images_vs_tables", CLAIM, argv)
    params = image_params()
    at28 = SIDES.index(28)
    exp.record(
        image_sides=list(SIDES),
        params_mlp=params["mlp"]["total"],
        params_cnn=params["cnn"]["total"],
        params_cnn_convolutions=params["cnn"]["part"],
        params_ratio_28=params["mlp"]["total"][at28] / params["cnn"]["total"][at28],
    )
    names, seeds = (list(TABLES)[:2], (0,)) if exp.quick else (list(TABLES), (0, 1, 2))
    if exp.quick:
        exp.notes.append("--quick: moons and xor, one seed; full: three tables, three seeds")
    tables = {}
    for name in names:
        runs = [table_scores(name, seed, epochs=40) for seed in seeds]
        tables[name] = {k: float(np.mean([r[k] for r in runs])) for k in runs[0]}
        worst = {
            "gap_to_linear": min(r["mlp"] - r["linear"] for r in runs),
            "gap_to_forest": min(r["mlp"] - r["forest"] for r in runs),
        }
        exp.record(**{f"{name}_{k}": v for k, v in {**tables[name], **worst}.items()})
        tables[name].update(worst)
    draw(exp, params, {k.split(":")[1]: v for k, v in tables.items()})

    exp.check(
        params["mlp"]["part"] == [(s * s + 1) * HIDDEN for s in SIDES],
        f"the MLP's first layer costs (H W + 1) x {HIDDEN} parameters at every image size",
    )
    exp.check(
        len(set(params["cnn"]["part"])) == 1,
        "the CNN's convolutions cost the same at every image size (shared filters)",
    )
    exp.check(
        params["mlp"]["total"][at28] > 2 * params["cnn"]["total"][at28],
        "on 28x28 images the MLP has more than twice the CNN's parameters",
    )
    for name, t in tables.items():
        exp.check(
            t["gap_to_linear"] >= 0.08 and t["gap_to_forest"] >= -0.03,
            f"{name}: the MLP beats the linear model by >= 8 points and is within 3 points of "
            "the random forest (every seed)",
        )
    exp.finish()


if __name__ == "__main__":
    main()
