"""Chapter 10: dense layers pay per pixel on images; on real tables an MLP is strong.

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
2. Real tables, scikit-learn's bundled copies of two UCI sets (BSD-3 in scikit-learn; the
   originals CC BY 4.0): breast cancer (569 patients, 30 measurements of cell nuclei, benign or
   malignant) and wine (178 wines, 13 chemical measurements, 3 cultivars). On each, a stratified
   split (25% test, 15% of the rest for validation) per seed; an MLP (64-64, Adam, best
   validation loss over 100 epochs) against a linear classifier (the same code with no hidden
   layer) and a random forest of 200 trees fitted on train and validation, the usual strong
   baseline on tables. Asserted on every table: the MLP's mean test accuracy over the seeds is
   within 3 points of the forest's (or above it) and no worse than the linear model's by more
   than 3 points. Chapter 10's third kind of data, categorical columns, is
   ``ch10_embeddings_for_categories``.

``--quick`` runs 3 seeds per table (full: 8); the assertions are the same.

Figure: parameters against image side; mean test accuracy of the three models on each table,
with each seed's score.

Run: ``python -m experiments.ch10_mlp_images_vs_tables [--quick] [--out DIR]``.
"""

from __future__ import annotations

import types

import jax
import numpy as np

from experiments.harness import Experiment, fit_config
from experiments.style import PALETTE, THRESHOLD, baseline_line, legend_below, panels
from jaxnn.data import Dataset, DatasetInfo, Splits, pipeline, split_indices
from jaxnn.models import build, get, param_count
from jaxnn.train import fit

CLAIM = (
    "Chapter 10: a dense layer wires every pixel to every unit, so an MLP needs many more "
    "parameters than a CNN on images (and more as the image grows), while on real tables an "
    "MLP is strong: on par with a random forest."
)

SIDES = (8, 16, 28, 32, 64, 128)
HIDDEN = 256
TABLES = ("breast_cancer", "wine")
MODELS = ("linear", "mlp", "forest")


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


def table_splits(name: str, seed: int) -> Splits:
    """One of scikit-learn's bundled UCI tables as stratified train/val/test splits."""
    from sklearn import datasets

    table = getattr(datasets, f"load_{name}")()
    x, y = table.data.astype(np.float32), table.target.astype(np.int32)
    rest, test = split_indices(y, 0.25, seed=seed)
    train, val = (rest[i] for i in split_indices(y[rest], 0.15, seed=seed))
    info = DatasetInfo(
        name=name,
        task="classification",
        input_shape=(x.shape[1],),
        num_classes=int(y.max()) + 1,
        class_names=tuple(table.target_names),
        modality="tabular",
        description=f"scikit-learn's bundled UCI {name.replace('_', ' ')} table",
    )
    return Splits(
        Dataset(x[train], y[train]), Dataset(x[val], y[val]), Dataset(x[test], y[test]), info
    )


def table_scores(name: str, seed: int) -> dict:
    """Test accuracy of a linear model, an MLP and a random forest on one split of a table."""
    from sklearn.ensemble import RandomForestClassifier

    splits, _ = pipeline.standardize(table_splits(name, seed))
    cfg = fit_config(epochs=100, batch_size=32, lr=1e-2, monitor="val_loss", seed=seed,
                    progress=False, checkpoint=False)  # fmt: skip
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
    figs, (ax1, ax2) = panels(2, size=(4.2, 3.8))
    ax1.plot(SIDES, params["mlp"]["total"], "o-", color=PALETTE[1], label="MLP, all layers")
    ax1.plot(SIDES, params["mlp"]["part"], "o--", color=PALETTE[1], label="MLP, first layer")
    ax1.plot(SIDES, params["cnn"]["total"], "s-", color=PALETTE[0], label="CNN, all layers")
    ax1.plot(SIDES, params["cnn"]["part"], "s--", color=PALETTE[0], label="CNN, convolutions")
    baseline_line(ax1, 28, "28x28 (MNIST)", horizontal=False)
    ax1.set_xscale("log", base=2)
    ax1.set_yscale("log")
    ax1.set_xticks(SIDES, ["" if s == 28 else str(s) for s in SIDES])  # 28: the dotted line
    ax1.set_xlabel("image side (pixels, one channel)")
    ax1.set_ylabel("trainable parameters")
    ax1.set_title("Parameters on images")
    ax1.grid(alpha=0.3, which="both")
    ax1.legend(loc="upper left")
    width = 0.27
    for i, model in enumerate(MODELS):
        means = [np.mean(tables[t][model]) for t in TABLES]
        bars = ax2.bar(np.arange(len(TABLES)) + (i - 1) * width, means, width, label=model,
                       color=PALETTE[(2, 0, 4)[i]])  # fmt: skip
        ax2.bar_label(bars, fmt="%.2f", rotation=90, padding=3)
        for j, t in enumerate(TABLES):
            ax2.plot([j + (i - 1) * width] * len(tables[t][model]), tables[t][model], "k.", ms=3)
    for j, t in enumerate(TABLES):
        level = np.mean(tables[t]["forest"]) - 0.03
        label = "asserted: MLP >= forest - 3 points" if j == 0 else None
        ax2.plot([j - 1.5 * width, j + 1.5 * width], [level, level], color=THRESHOLD, ls="-.",
                 lw=1.2, label=label)  # fmt: skip
    ax2.set_xticks(range(len(TABLES)), [t.replace("_", " ") for t in TABLES])
    ax2.set_ylim(0.7, 1.12)
    ax2.set_ylabel("test accuracy (dots: seeds)")
    ax2.set_title("Real tables: MLP vs linear vs forest")
    legend_below(ax2, ncols=2)
    exp.save(
        figs,
        "mlp_images_vs_tables.png",
        caption="The MLP's first layer grows with the image's area while the CNN's filters "
        "stay the same size; on two real tables the MLP scores with the random forest.",
        alt=[
            "Parameter counts against image side on log axes: the MLP's lines climb with the "
            "image area, the CNN's convolutions stay flat.",
            "Grouped bars of mean test accuracy of the linear model, the MLP and the random "
            "forest on the breast-cancer and wine tables, each seed a dot.",
        ],
    )


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
    seeds = range(3) if exp.quick else range(8)
    if exp.quick:
        exp.notes.append("--quick: 3 seeds per table (full: 8); same assertions")
    tables = {}
    for name in TABLES:
        runs = [table_scores(name, seed) for seed in seeds]
        tables[name] = {m: [r[m] for r in runs] for m in MODELS}
        exp.record(
            **{f"{name}_test_accuracy_{m}_mean": float(np.mean(tables[name][m])) for m in MODELS},
            **{f"{name}_test_accuracy_{m}": tables[name][m] for m in MODELS},
        )
    exp.record(seeds=len(seeds))
    draw(exp, params, tables)

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
        mean = {m: float(np.mean(t[m])) for m in MODELS}
        exp.check(
            mean["mlp"] >= mean["forest"] - 0.03 and mean["mlp"] >= mean["linear"] - 0.03,
            f"{name.replace('_', ' ')}: the MLP's mean test accuracy {mean['mlp']:.3f} is within "
            f"3 points of the random forest's {mean['forest']:.3f} (or above) and of the linear "
            f"model's {mean['linear']:.3f}",
        )
    exp.finish()


if __name__ == "__main__":
    main()
