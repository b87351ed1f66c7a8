"""Chapter 3: a stack of linear layers is one linear layer, so it cannot fit a nonlinear boundary.

The book's claim: without activation functions, layers compose into a single affine map
``x -> xW + b``, so depth adds no expressive power; a nonlinearity is what lets a network model
curved relationships.

Measured here:

1. A 4-layer MLP (2-16-16-16-2) with the identity activation equals the single composed affine map
   ``W = W0 W1 W2 W3``, ``b = ((b0 W1 + b1) W2 + b2) W3 + b3``, run as a one-layer MLP: the largest
   absolute difference of the logits is float32 rounding (asserted below 1e-5).
2. On ``synthetic:spirals`` (two interleaved arms) a linear model and the identity-activation
   4-layer MLP stay near chance, while a ReLU MLP of the same depth fits the spirals: test accuracy
   gap of at least 30 points (asserted in full and ``--quick`` runs alike).

Figure: decision regions of the linear model, the deep linear MLP and the ReLU MLP.

Run: ``python experiments/ch03_linear_collapse.py [--quick] [--out DIR]``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from experiments.harness import Experiment, fit_config
from experiments.style import panels
from jaxnn.data import load, pipeline
from jaxnn.models import build, mlp, param_count
from jaxnn.train import fit

CLAIM = (
    "Chapter 3: a stack of linear layers equals one linear layer, so without a nonlinearity a "
    "deep network stays a linear classifier (near chance on spirals) while a ReLU MLP fits them."
)


def compose_affine(params: dict) -> dict:
    """Fold an identity-activation MLP's dense layers into one ``{"w", "b"}`` affine layer."""
    w, b = params["dense_0"]["w"], params["dense_0"]["b"]
    for i in range(1, len(params)):
        layer = params[f"dense_{i}"]
        w, b = w @ layer["w"], b @ layer["w"] + layer["b"]
    return {"dense_0": {"w": w, "b": b}}


def collapse_error(key) -> float:
    """Max abs difference between a 4-layer identity MLP and its composed single layer."""
    cfg = mlp.Config(input_dim=2, hidden=(16, 16, 16), num_classes=2, activation="identity")
    k_init, k_x = jax.random.split(key)
    params = mlp.init(k_init, cfg)
    x = jax.random.normal(k_x, (256, 2))  # (B, 2)
    deep = mlp.apply(params, x, cfg=cfg)[0]  # (B, 2)
    one_layer = mlp.Config(input_dim=2, hidden=(), num_classes=2, activation="identity")
    single = mlp.apply(compose_affine(params), x, cfg=one_layer)[0]  # (B, 2)
    return float(jnp.max(jnp.abs(deep - single)))


def train(splits, hidden, activation, fit_cfg):
    model = build("mlp", mlp.config_for(splits.info, hidden=hidden, activation=activation))
    result = fit(model, splits, fit_cfg, verbose=False)
    return model, result


def main(argv=None) -> None:
    exp = Experiment("ch03_linear_collapse", CLAIM, argv)
    err = collapse_error(jax.random.PRNGKey(0))
    exp.record(collapse_max_abs_diff=err)

    n, epochs = (600, 40) if exp.quick else (2000, 150)
    splits, standardizer = pipeline.standardize(load("synthetic:spirals", seed=0, n=n))
    fit_cfg = fit_config(epochs=epochs, batch_size=32, lr=1e-2, progress=False, checkpoint=False)
    runs = {
        "linear (one layer)": train(splits, (), "identity", fit_cfg),
        "4-layer, identity": train(splits, (64, 64, 64), "identity", fit_cfg),
        "4-layer, relu": train(splits, (64, 64, 64), "relu", fit_cfg),
    }
    acc = {k: r.summary["test_accuracy"] for k, (_, r) in runs.items()}
    exp.record(
        n_examples=n,
        epochs=epochs,
        test_accuracy_linear=acc["linear (one layer)"],
        test_accuracy_deep_linear=acc["4-layer, identity"],
        test_accuracy_relu=acc["4-layer, relu"],
        accuracy_gap=acc["4-layer, relu"] - acc["linear (one layer)"],
        params_relu=param_count(runs["4-layer, relu"][1].best_params),
    )

    raw_train = splits.train.x * np.asarray(standardizer.std) + np.asarray(standardizer.mean)
    lo, hi = float(raw_train.min()) - 0.1, float(raw_train.max()) + 0.1
    gx, gy = np.meshgrid(np.linspace(lo, hi, 200), np.linspace(lo, hi, 200))
    grid = np.stack([gx.ravel(), gy.ravel()], axis=1).astype(np.float32)  # (G, 2)
    figs, axes = panels(3, size=(3.6, 3.6))
    points = standardizer.apply(grid)
    for ax, (label, (model, result)) in zip(axes, runs.items(), strict=True):
        logits, _ = model.apply(result.best_params, points, state=result.best_model_state)
        pred = np.asarray(jnp.argmax(logits, axis=-1)).reshape(gx.shape)
        regions = ax.contourf(gx, gy, pred, levels=[-0.5, 0.5, 1.5], cmap="coolwarm", alpha=0.35)
        dots = ax.scatter(
            raw_train[:, 0],
            raw_train[:, 1],
            c=splits.train.y,
            cmap="coolwarm",
            s=6,
            edgecolors="none",
        )
        regions.set_rasterized(True)
        dots.set_rasterized(True)
        ax.set_title(f"{label}\ntest accuracy {acc[label]:.2f}")
        ax.set_xlim(lo, hi)
        ax.set_ylim(lo, hi)
        ax.set_aspect("equal")
        ax.set_xlabel("x1")
        ax.set_ylabel("x2")
    exp.save(
        figs,
        "decision_regions.png",
        caption="Only the ReLU network's regions (shaded, predicted class) follow the two arms: "
        "both linear models, shallow and deep, cut the plane with one straight line.",
        alt=[
            f"Decision regions of a {name} model on the two spiral arms: {desc}; test accuracy "
            f"{acc[name]:.2f}."
            for name, desc in zip(
                runs,
                ("a straight boundary", "a straight boundary", "a boundary that follows the arms"),
                strict=True,
            )
        ],
    )

    exp.check(err < 1e-5, f"identity 4-layer MLP equals its composed affine map (max {err:.2e})")
    exp.check(
        acc["linear (one layer)"] <= 0.75 and acc["4-layer, identity"] <= 0.75,
        "linear and deep-linear models stay near chance (0.5; test accuracy <= 0.75) on spirals",
    )
    exp.check(
        acc["4-layer, relu"] - acc["linear (one layer)"] >= 0.3,
        "the ReLU MLP beats the linear model by >= 30 points of test accuracy",
    )
    exp.finish()


if __name__ == "__main__":
    main()
