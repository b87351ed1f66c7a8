"""Chapter 6: the step size decides between crawling and diverging; noise and momentum escape.

The book's claim: the gradient points toward steepest local increase, so subtracting it (times
the learning rate ``eta``) moves toward lower loss; mini-batch SGD estimates the gradient from a
small subset of examples; gradient descent can slow near saddles, but stochasticity, momentum and
adaptive methods often help.

Measured here:

1. **The descent direction.** At the initial parameters of the digits MLP below, a step of size
   ``eta`` against the gradient ``g`` lowers the loss and the same step along it raises it, for
   every ``eta`` from 1e-4 to 0.1; for the smallest step the drop equals ``eta ||g||^2``, the
   first-order prediction, within 10%.
2. **Learning-rate sweep.** An MLP ``64-64-10`` on the 8x8 ``digits`` images, trained by ``fit``
   with plain SGD for the same number of epochs at learning rates from 1e-4 to 30. The smallest
   rate crawls (its final training loss is still >= 80% of ``ln 10``, the loss of a uniform guess,
   and >= 5x the best rate's); the largest diverges (``fit``'s divergence guard stops it); the
   best rate lies strictly between.
3. **Mini-batch noise.** At the initial parameters, the relative error of a mini-batch gradient
   against the full-batch gradient, ``||g_B - g|| / ||g||`` averaged over random batches, falls as
   ``1 / sqrt(B)``: the log-log slope over ``B = 1 ... 256`` lies in ``[-0.65, -0.35]``.
4. **A saddle.** On ``f(x, y) = x^2 / 2 + (y^2 - 1)^2 / 4`` (a saddle at the origin, minima at
   ``(0, +-1)``), started at ``(1, 0)`` exactly on the saddle's ridge, gradient descent and momentum
   converge to the saddle (``f`` stays at 0.25) while gradient descent with Gaussian gradient noise
   (``sigma = 0.05``, standing for mini-batch noise) reaches a minimum (``f < 0.01``). Started at
   ``(1, 1e-6)``, momentum (``beta = 0.9``) and Adam leave the saddle at least 3x sooner than plain
   gradient descent (steps until ``|y| > 0.5``). The optimizers are :mod:`jaxnn.optim`'s.

``--quick`` trains 8 epochs per learning rate instead of 30 and averages 20 mini-batches per size
instead of 200 (the same assertions).

Figure: training and validation loss per epoch for each learning rate (a diverged run is a cross
where it stopped), gradient noise against the batch size, the saddle's trajectories, the loss
change along and against the gradient. Slider: one learning rate's curves at a time.

Run: ``python -m experiments.ch06_learning_rate_noise_saddles [--quick] [--out DIR]``.
"""

from __future__ import annotations

import math
import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
from matplotlib.ticker import NullFormatter

from experiments.harness import Experiment, fit_config
from experiments.style import (
    BASELINE,
    PALETTE,
    THRESHOLD,
    baseline_line,
    panels,
    split_legend,
    threshold_line,
)
from jaxnn import losses, optim
from jaxnn.data import load, pipeline
from jaxnn.models import build
from jaxnn.train import fit

CLAIM = (
    "Chapter 6: a small step against the gradient lowers the loss; too small a learning rate "
    "crawls and too large diverges; mini-batch gradients are noisy estimates of the full "
    "gradient (noise ~ 1/sqrt(batch)); gradient descent stalls at a saddle that noise, momentum "
    "and adaptive steps escape."
)
LRS = (1e-4, 1e-3, 1e-2, 1e-1, 1.0, 30.0)
ETAS = (1e-4, 1e-3, 1e-2, 1e-1)
BATCHES = (1, 4, 16, 64, 256)


def lr_sweep(splits, epochs: int) -> dict:
    model = build("mlp", splits.info, hidden=(64,))
    runs = {}
    for lr in LRS:
        cfg = fit_config(
            epochs=epochs,
            batch_size=32,
            lr=lr,
            optimizer="sgd",
            divergence_factor=10.0,
            progress=False,
            checkpoint=False,
        )
        runs[lr] = fit(model, splits, cfg, verbose=False)
    return runs


def gradient_noise(splits, draws: int, seed: int = 0) -> list[float]:
    """Mean ``||g_B - g|| / ||g||`` at initialization for each batch size ``B`` in BATCHES."""
    model = build("mlp", splits.info, hidden=(64,))
    params, state = model.init(jax.random.PRNGKey(seed))
    x, y = jnp.asarray(splits.train.x), jnp.asarray(splits.train.y)

    def loss(p, xi, yi):
        return losses.cross_entropy(model.apply(p, xi[None], state=state)[0], yi[None])

    per_example = jax.vmap(jax.grad(loss), in_axes=(None, 0, 0))(params, x, y)
    flat = jnp.concatenate(
        [g.reshape(len(x), -1) for g in jax.tree.leaves(per_example)], axis=1
    )  # (N, P)
    full = flat.mean(0)  # (P,)
    rng = np.random.default_rng(seed)
    errors = []
    for b in BATCHES:
        idx = np.stack([rng.choice(len(x), b, replace=False) for _ in range(draws)])  # (D, B)
        batch_grads = flat[idx].mean(1)  # (D, P)
        rel = jnp.linalg.norm(batch_grads - full, axis=1) / jnp.linalg.norm(full)
        errors.append(float(rel.mean()))
    return errors


def saddle_f(p):
    return 0.5 * p["x"] ** 2 + 0.25 * (p["y"] ** 2 - 1.0) ** 2


def descend(tx, start, steps: int, noise: float = 0.0, seed: int = 0) -> np.ndarray:
    """Run ``tx`` on ``saddle_f`` from ``start``; returns the (steps + 1, 2) trajectory."""
    params = {"x": jnp.float32(start[0]), "y": jnp.float32(start[1])}
    key = jax.random.PRNGKey(seed)

    def step(carry, t):
        params, opt_state = carry
        g = jax.grad(saddle_f)(params)
        eps = noise * jax.random.normal(jax.random.fold_in(key, t), (2,))
        g = {"x": g["x"] + eps[0], "y": g["y"] + eps[1]}
        updates, opt_state = tx.update(g, opt_state, params)
        params = optax.apply_updates(params, updates)
        return (params, opt_state), jnp.stack([params["x"], params["y"]])

    _, path = jax.lax.scan(step, (params, tx.init(params)), jnp.arange(steps))
    return np.concatenate([np.array([start], np.float32), np.asarray(path)])


def saddle_runs(steps: int, eta: float = 0.01) -> dict:
    on_ridge = {
        "gradient descent": descend(optim.sgd(eta), (1.0, 0.0), steps),
        "momentum 0.9": descend(optim.momentum(eta, beta=0.9), (1.0, 0.0), steps),
        "GD + gradient noise": descend(optim.sgd(eta), (1.0, 0.0), steps, noise=0.05),
    }
    near = {
        "gradient descent": descend(optim.sgd(eta), (1.0, 1e-6), steps),
        "momentum 0.9": descend(optim.momentum(eta, beta=0.9), (1.0, 1e-6), steps),
        "adam": descend(optim.adam(eta), (1.0, 1e-6), steps),
    }
    return {"on_ridge": on_ridge, "near_ridge": near}


def escape_step(path: np.ndarray) -> int:
    """First step with ``|y| > 0.5`` (the number of steps + 1 if never)."""
    out = np.nonzero(np.abs(path[:, 1]) > 0.5)[0]
    return int(out[0]) if len(out) else len(path)


def _f(path):
    return 0.5 * path[:, 0] ** 2 + 0.25 * (path[:, 1] ** 2 - 1.0) ** 2


def descent_direction(splits, etas, seed: int = 0) -> dict:
    """Loss change of the digits MLP at initialization after a step of size ``eta`` against the
    gradient and along it, and the first-order prediction ``eta ||g||^2``."""
    model = build("mlp", splits.info, hidden=(64,))
    params, state = model.init(jax.random.PRNGKey(seed))
    x, y = jnp.asarray(splits.train.x), jnp.asarray(splits.train.y)

    def loss(p):
        return losses.cross_entropy(model.apply(p, x, state=state)[0], y)

    base, g = jax.value_and_grad(loss)(params)
    g2 = float(sum(jnp.sum(v**2) for v in jax.tree.leaves(g)))
    rows = {"eta": list(etas), "down": [], "up": [], "predicted": []}
    for eta in etas:
        for key, sign in (("down", -1.0), ("up", 1.0)):
            moved = jax.tree.map(lambda p, d, s=sign, e=eta: p + s * e * d, params, g)
            rows[key].append(float(loss(moved) - base))
        rows["predicted"].append(eta * g2)
    rows["grad_norm_sq"] = g2
    return rows


def _diverged_step(result) -> int:
    """The step that the divergence guard named (``fit``'s message says which)."""
    return int(re.search(r"diverged at step (\d+)", result.summary["message"]).group(1))


def _draw_sweep(ax, runs, splits, highlight=None):
    for (lr, result), color in zip(runs.items(), PALETTE, strict=False):
        faded = highlight is not None and lr != highlight
        style = {"color": "#cccccc" if faded else color, "lw": 1.0 if faded else 1.8}
        label = None if faded else f"lr {lr:g}"
        if result.summary["stopped_reason"] == "diverged":
            step = _diverged_step(result)
            at = step / max(1, len(splits.train) // 32)
            label = None if faded else f"lr {lr:g}: diverged (step {step})"
            ax.plot([at], [10 * math.log(10)], marker="X", ms=9, ls="none", color=style["color"],
                    label=label)  # fmt: skip
            continue
        ep = [h["epoch"] for h in result.history]
        ax.plot(ep, [h["train_loss"] for h in result.history], label=label, **style)
        ax.plot(ep, [h["val_loss"] for h in result.history], ls="--", **style)
    baseline_line(ax, math.log(10), "uniform guess ln 10")
    ax.set_yscale("log")
    ax.set_ylim(1e-3, 40)
    ax.set_xlabel("epoch")
    ax.set_ylabel("cross-entropy (nats)")


def _draw_noise(bx, noise):
    bx.plot(BATCHES, noise, marker="o", label="measured")
    b = np.array(BATCHES, float)
    for slope, label in ((-0.35, "asserted slope band"), (-0.65, None)):
        bx.plot(b, noise[0] * b**slope, color=THRESHOLD, ls="-.", lw=1.2, label=label)
    bx.plot(b, noise[0] / np.sqrt(b), color=BASELINE, ls=":", label="1 / sqrt(B)")
    bx.set_xscale("log", base=2)
    bx.set_yscale("log")
    bx.yaxis.set_minor_formatter(NullFormatter())
    bx.set_xlabel("mini-batch size B (examples)")
    bx.set_ylabel("relative error of g_B vs g")
    bx.set_title("Mini-batch gradient noise")
    bx.legend(loc="lower left")


def _draw_saddle(cx, dx, saddle):
    gx, gy = np.meshgrid(np.linspace(-1.2, 1.2, 200), np.linspace(-1.4, 1.4, 200))
    levels = _f(np.stack([gx.ravel(), gy.ravel()], 1)).reshape(gx.shape)
    cx.contour(gx, gy, levels, 20, colors="#cccccc", linewidths=0.8)
    styles = {
        "gradient descent": ("-", 5),
        "momentum 0.9": ("--", 2),
        "GD + gradient noise": ("-", 2),
    }
    for (name, path), color in zip(saddle["on_ridge"].items(), PALETTE, strict=False):
        ls, lw = styles[name]
        final = _f(path[-1:])[0]
        cx.plot(path[:, 0], path[:, 1], color=color, ls=ls, lw=lw, label=f"{name}: f={final:.2f}")
    cx.plot([0], [0], marker="x", color="black", ls="none", label="saddle (f=0.25)")
    cx.set_xlabel("x")
    cx.set_ylabel("y")
    cx.set_title("From (1, 0), on the ridge")
    cx.legend(loc="lower left")
    for (name, path), color in zip(saddle["near_ridge"].items(), PALETTE, strict=False):
        dx.plot(np.arange(len(path)), _f(path), color=color, label=name)
        dx.axvline(escape_step(path), color=color, ls=":", lw=1)
    baseline_line(dx, 0.25, "saddle value f=0.25")
    dx.set_xscale("symlog", linthresh=10)
    dx.set_xlim(left=0)
    dx.set_xlabel("step (dotted: left the saddle)")
    dx.set_ylabel("f(x, y)")
    dx.set_title("From (1, 1e-6): time near the saddle")
    dx.legend(loc="lower left")


def _draw_direction(ex, direction):
    eta = np.array(direction["eta"])
    ex.plot(eta, -np.array(direction["down"]), marker="o", label="loss drop, step against g")
    ex.plot(eta, direction["up"], marker="s", label="loss rise, step along g")
    ex.plot(eta, direction["predicted"], color=BASELINE, ls=":", label="eta ||g||^2")
    ex.set_xscale("log")
    ex.set_yscale("log")
    ex.set_xlabel("step size eta")
    ex.set_ylabel("|change of the loss| (nats)")
    ex.set_title("Why subtract the gradient")
    ex.legend(loc="upper left")


def draw(exp, runs, splits, noise, saddle, direction):
    figs, (ax, bx, cx, dx, ex) = panels(5)
    figs[0].set_size_inches(4.2, 6.2)
    _draw_sweep(ax, runs, splits)
    threshold_line(ax, 0.8 * math.log(10), f"asserted: lr {LRS[0]:g} >= 0.8 ln 10")
    ax.set_title("Learning-rate sweep (SGD, digits)")
    split_legend(ax, below=True)
    _draw_noise(bx, noise)
    _draw_saddle(cx, dx, saddle)
    _draw_direction(ex, direction)
    exp.save(
        figs,
        "learning_rate_noise_saddle.png",
        caption="The smallest rate barely moves, the largest blows up, a middle one wins; batch "
        "noise falls as 1/sqrt(B); on the saddle's ridge only noise escapes, and next to it "
        "momentum and Adam leave soonest; a small step against the gradient lowers the loss by "
        "about eta ||g||^2.",
        alt=[
            "Training (solid) and validation (dashed) loss per epoch for six learning rates: "
            "1e-4 stays near ln 10, 30 diverges at once (a cross), the middle rates fall.",
            "Relative mini-batch gradient error against batch size on log axes, a straight line "
            "of slope about -1/2 inside the asserted band.",
            "Trajectories on the saddle surface from (1, 0): gradient descent and momentum end "
            "at the saddle, the noisy run reaches a minimum.",
            "The function value against steps from just off the ridge: momentum and Adam drop "
            "from the saddle value far sooner than gradient descent.",
            "Loss drop for steps against the gradient and loss rise for steps along it, both "
            "following eta times the squared gradient norm for small steps.",
        ],
    )
    frames, axes = panels(len(LRS), size=(4.2, 4.2))
    for lr, fx in zip(LRS, axes, strict=True):
        _draw_sweep(fx, runs, splits, highlight=lr)
        result = runs[lr]
        tail = (
            "diverged"
            if result.summary["stopped_reason"] == "diverged"
            else f"train loss {result.history[-1]['train_loss']:.3g}"
        )
        fx.set_title(f"lr {lr:g}: {tail}")
        split_legend(fx, below=True)
    exp.slider(
        "learning_rate",
        "learning rate",
        list(LRS),
        frames,
        caption="One learning rate at a time, the others in gray: crawling at 1e-4, fastest "
        "near 0.1 to 1, diverging at 30.",
        alt=[f"Loss per epoch at learning rate {lr:g}, the other rates faded." for lr in LRS],
        initial=LRS.index(1e-2),
    )


def main(argv=None) -> None:
    exp = Experiment("ch06_learning_rate_noise_saddles", CLAIM, argv)
    epochs, draws, steps = (8, 20, 1500) if exp.quick else (30, 200, 3000)
    if exp.quick:
        exp.notes.append("--quick: 8 epochs per learning rate, 20 mini-batches per size")
    splits, _ = pipeline.standardize(load("digits", seed=0))
    runs = lr_sweep(splits, epochs)
    final = {lr: r.history[-1]["train_loss"] if r.history else math.inf for lr, r in runs.items()}
    finite = {lr: v for lr, v in final.items() if runs[lr].summary["stopped_reason"] == "completed"}
    best_lr = min(finite, key=finite.get)
    noise = gradient_noise(splits, draws)
    slope = float(np.polyfit(np.log(BATCHES), np.log(noise), 1)[0])
    saddle = saddle_runs(steps)
    ridge_f = {k: float(_f(p[-1:])[0]) for k, p in saddle["on_ridge"].items()}
    escape = {k: escape_step(p) for k, p in saddle["near_ridge"].items()}
    exp.record(
        learning_rates=list(LRS),
        final_train_loss=[final[lr] if math.isfinite(final[lr]) else None for lr in LRS],
        final_val_loss=[r.history[-1]["val_loss"] if r.history else None for r in runs.values()],
        epochs_run=[len(r.history) for r in runs.values()],
        stopped_reason=[runs[lr].summary["stopped_reason"] for lr in LRS],
        best_learning_rate=best_lr,
        batch_sizes=list(BATCHES),
        gradient_relative_error=noise,
        noise_slope=slope,
        saddle_final_f_from_ridge=ridge_f,
        saddle_escape_steps=escape,
    )
    direction = descent_direction(splits, ETAS)
    first_order = [d / p for d, p in zip(direction["down"], direction["predicted"], strict=True)]
    exp.record(
        step_sizes=list(ETAS),
        loss_change_against_gradient=direction["down"],
        loss_change_along_gradient=direction["up"],
        first_order_ratio_smallest_step=-first_order[0],
    )
    draw(exp, runs, splits, noise, saddle, direction)

    small, large = LRS[0], LRS[-1]
    exp.check(
        final[small] >= 0.8 * math.log(10) and final[small] >= 5 * final[best_lr],
        f"lr {small:g} crawls: loss {final[small]:.2f} after {epochs} epochs (best lr {best_lr:g}: "
        f"{final[best_lr]:.3f})",
    )
    exp.check(runs[large].summary["stopped_reason"] == "diverged", f"lr {large:g} diverges")
    exp.check(small < best_lr < large, "the best learning rate lies strictly between the extremes")
    exp.check(-0.65 <= slope <= -0.35, f"mini-batch gradient noise falls as B^{slope:.2f} (~-1/2)")
    exp.check(
        ridge_f["gradient descent"] > 0.24
        and ridge_f["momentum 0.9"] > 0.24
        and ridge_f["GD + gradient noise"] < 0.01,
        "from the ridge, GD and momentum stall at the saddle (f=0.25); noise reaches a minimum",
    )
    gd = escape["gradient descent"]
    exp.check(
        3 * escape["momentum 0.9"] <= gd and 3 * escape["adam"] <= gd,
        f"near the ridge, momentum ({escape['momentum 0.9']} steps) and Adam "
        f"({escape['adam']}) leave the saddle >= 3x sooner than GD ({gd})",
    )
    exp.check(
        all(d < 0 < u for d, u in zip(direction["down"], direction["up"], strict=True)),
        "a step against the gradient lowers the loss and a step along it raises it, at every "
        f"step size {', '.join(f'{e:g}' for e in ETAS)}",
    )
    exp.check(
        0.9 <= -first_order[0] <= 1.1,
        f"for the smallest step the drop is eta ||g||^2 to first order (ratio {-first_order[0]:.3f}"
        ", within 10%)",
    )
    exp.finish()


if __name__ == "__main__":
    main()
