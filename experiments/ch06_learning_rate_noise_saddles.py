"""Chapter 6: the step size decides between crawling and diverging; noise and momentum escape.

The book's claim: the gradient points toward steepest local increase, so subtracting it (times
the learning rate ``eta``) moves toward lower loss; mini-batch SGD estimates the gradient from a
small subset of examples; gradient descent can slow near saddles, but stochasticity, momentum and
adaptive methods often help.

Measured here:

1. **Learning-rate sweep.** An MLP ``64-64-10`` on the 8x8 ``digits`` images, trained by ``fit``
   with plain SGD for the same number of epochs at learning rates from 1e-4 to 30. The smallest
   rate crawls (its final training loss is still >= 80% of ``ln 10``, the loss of a uniform guess,
   and >= 5x the best rate's); the largest diverges (``fit``'s divergence guard stops it); the
   best rate lies strictly between.
2. **Mini-batch noise.** At the initial parameters, the relative error of a mini-batch gradient
   against the full-batch gradient, ``||g_B - g|| / ||g||`` averaged over random batches, falls as
   ``1 / sqrt(B)``: the log-log slope over ``B = 1 ... 256`` lies in ``[-0.65, -0.35]``.
3. **A saddle.** On ``f(x, y) = x^2 / 2 + (y^2 - 1)^2 / 4`` (a saddle at the origin, minima at
   ``(0, +-1)``), started at ``(1, 0)`` exactly on the saddle's ridge, gradient descent and momentum
   converge to the saddle (``f`` stays at 0.25) while gradient descent with Gaussian gradient noise
   (``sigma = 0.05``, standing for mini-batch noise) reaches a minimum (``f < 0.01``). Started at
   ``(1, 1e-6)``, momentum (``beta = 0.9``) and Adam leave the saddle at least 3x sooner than plain
   gradient descent (steps until ``|y| > 0.5``). The optimizers are :mod:`jaxnn.optim`'s.

``--quick`` trains 8 epochs per learning rate instead of 30 and averages 20 mini-batches per size
instead of 200 (the same assertions).

Figure: training and validation loss per epoch for each learning rate, gradient noise against the
batch size, and the saddle's trajectories.

Run: ``python -m experiments.ch06_learning_rate_noise_saddles [--quick] [--out DIR]``.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax

from experiments.harness import Experiment, plt
from experiments.style import BASELINE, PALETTE, baseline_line
from jaxnn import losses, optim
from jaxnn.data import load, pipeline
from jaxnn.models import build
from jaxnn.train import FitConfig, fit

CLAIM = (
    "Chapter 6: too small a learning rate crawls and too large diverges; mini-batch gradients are "
    "noisy estimates of the full gradient (noise ~ 1/sqrt(batch)); gradient descent stalls at a "
    "saddle that noise, momentum and adaptive steps escape."
)
LRS = (1e-4, 1e-3, 1e-2, 1e-1, 1.0, 30.0)
BATCHES = (1, 4, 16, 64, 256)


def lr_sweep(splits, epochs: int) -> dict:
    model = build("mlp", splits.info, hidden=(64,))
    runs = {}
    for lr in LRS:
        cfg = FitConfig(
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


def _draw_sweep(ax, runs):
    for (lr, result), color in zip(runs.items(), PALETTE, strict=False):
        ep = [h["epoch"] for h in result.history]
        label = f"lr {lr:g}"
        if result.summary["stopped_reason"] == "diverged":
            label += f" (diverged, step {result.summary['steps']})"
        ax.plot(ep, [h["train_loss"] for h in result.history], color=color, label=label)
        ax.plot(ep, [h["val_loss"] for h in result.history], color=color, ls="--", lw=1)
    baseline_line(ax, math.log(10), "uniform guess ln 10")
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("cross-entropy (nats); train solid, val dashed")
    ax.set_title("Learning-rate sweep (SGD, digits)")
    ax.legend(fontsize=8, ncols=2)


def _draw_noise(bx, noise):
    bx.plot(BATCHES, noise, marker="o", label="measured")
    ref = noise[0] / np.sqrt(np.array(BATCHES))
    bx.plot(BATCHES, ref, color=BASELINE, ls=":", label="1 / sqrt(B)")
    bx.set_xscale("log", base=2)
    bx.set_yscale("log")
    bx.set_xlabel("mini-batch size B (examples)")
    bx.set_ylabel("||g_B - g|| / ||g||  (mean over batches)")
    bx.set_title("Mini-batch gradient noise at initialization")
    bx.legend()


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
    cx.set_title("f = x²/2 + (y²-1)²/4 from (1, 0), on the ridge")
    cx.legend(fontsize=8, loc="lower right")
    for (name, path), color in zip(saddle["near_ridge"].items(), PALETTE, strict=False):
        dx.plot(np.arange(len(path)), _f(path), color=color, label=f"{name} from (1, 1e-6)")
        dx.axvline(escape_step(path), color=color, ls=":", lw=1)
    baseline_line(dx, 0.25, "saddle value f=0.25")
    dx.set_xscale("symlog", linthresh=10)
    dx.set_xlim(left=0)
    dx.set_xlabel("step (dotted: |y| > 0.5, left the saddle)")
    dx.set_ylabel("f(x, y)")
    dx.set_title("Time spent near the saddle (lr 0.01)")
    dx.legend(fontsize=8)


def draw(exp, runs, noise, saddle):
    fig, axes = plt.subplots(2, 2, figsize=(12, 8.5))
    _draw_sweep(axes[0, 0], runs)
    _draw_noise(axes[0, 1], noise)
    _draw_saddle(axes[1, 0], axes[1, 1], saddle)
    exp.save(fig, "learning_rate_noise_saddle.png")


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
    draw(exp, runs, noise, saddle)

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
    exp.finish()


if __name__ == "__main__":
    main()
