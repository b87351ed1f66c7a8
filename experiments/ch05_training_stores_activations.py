"""Chapter 5: training stores the forward pass's activations; inference does not.

The book's claim: during training the intermediate activations are stored, because
backpropagation needs them to compute the derivatives for earlier parameters; inference computes
predictions only, while training also computes the loss, the gradients and the update.

Measured here, from XLA's own accounting of each compiled program
(``jax.jit(f).lower(...).compile().memory_analysis().temp_size_in_bytes``, the scratch memory
beyond inputs and outputs) for a stack of ``depth`` dense ReLU layers of width ``d``
(:func:`jaxnn.layers.dense` inside ``lax.scan``) on a batch of ``B`` examples:

1. inference's scratch memory does not grow with depth (each activation is dropped once the next
   is computed): largest over smallest <= 1.1;
2. the gradient's scratch memory grows by at least 0.8 activation (``B d`` floats) per extra
   layer: it keeps every layer's activation for the backward pass;
3. rematerialization (``jax.checkpoint`` around segments of ``sqrt(depth)`` layers: keep only
   segment boundaries, recompute the rest during the backward pass) at the deepest stack needs at
   most half the scratch memory of the plain gradient;
4. one training step of an MLP (``jaxnn.models.build("mlp", ...)``: forward, cross-entropy,
   gradient, SGD update) costs more than one inference pass: >= 2x the floating-point operations
   and >= 2x the bytes moved in XLA's cost analysis (the measured time, a median of repeats, is
   drawn and reported, not asserted);
5. softmax (:func:`jaxnn.activations.softmax`) turns logits of scale 1e4 into probabilities:
   all finite, non-negative, summing to one per row to 1e-6, where the formula written naively,
   ``exp(z) / sum(exp(z))``, overflows to NaN.

``--quick`` uses width 64 and depths up to 36 (full: width 256, batch 4096, depths up to 100;
the same assertions).

Figure: scratch memory against depth (inference, training, training with rematerialization); the
cost of a training step relative to inference (FLOPs, bytes, median time); softmax's rows.

Run: ``python -m experiments.ch05_training_stores_activations [--quick] [--out DIR]``.
"""

from __future__ import annotations

import math
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from experiments.harness import Experiment
from experiments.style import BASELINE, PALETTE, baseline_line, panels, threshold_line
from jaxnn import activations, losses
from jaxnn.layers import dense
from jaxnn.models import build, mlp

CLAIM = (
    "Chapter 5: training stores intermediate activations because backpropagation needs them "
    "(scratch memory grows with depth; inference's does not; rematerialization trades it for "
    "recomputation), a training step costs several inference passes, and softmax turns any "
    "scores into probabilities that sum to one."
)


def _layer(h, p):
    return jax.nn.relu(dense(p, h)), None  # (B, d)


def _stack(params, h, remat: bool):
    body = jax.checkpoint(_layer) if remat else _layer
    return jax.lax.scan(body, h, params)[0]


def deep_net(params, x, segment: int = 0):
    """Sum of the last activation of a ReLU stack; ``segment > 0`` checkpoints segments."""
    if not segment:
        return jnp.sum(_stack(params, x, False))
    depth = params["w"].shape[0]
    segments = jax.tree.map(lambda a: a.reshape(depth // segment, segment, *a.shape[1:]), params)
    outer = jax.checkpoint(lambda h, s: (_stack(s, h, False), None))
    return jnp.sum(jax.lax.scan(outer, x, segments)[0])


def scratch_bytes(fn, *args) -> int:
    """XLA's scratch (temporary) memory of the compiled ``fn`` in bytes."""
    return int(jax.jit(fn).lower(*args).compile().memory_analysis().temp_size_in_bytes)


def memory_by_depth(depths, width: int, batch: int) -> dict:
    x = jnp.ones((batch, width), jnp.float32)  # (B, d)
    rows = {"inference": [], "training": [], "training + remat": []}
    for depth in depths:
        params = {
            "w": jnp.full((depth, width, width), 1.0 / width, jnp.float32),
            "b": jnp.zeros((depth, width), jnp.float32),
        }
        segment = max(d for d in range(1, depth + 1) if depth % d == 0 and d <= math.sqrt(depth))
        rows["inference"].append(scratch_bytes(deep_net, params, x))
        rows["training"].append(scratch_bytes(jax.grad(deep_net), params, x))
        rows["training + remat"].append(
            scratch_bytes(jax.grad(lambda p, x, s=segment: deep_net(p, x, s)), params, x)
        )
    return rows


def _median_time(fn, *args, repeats: int) -> float:
    jax.block_until_ready(fn(*args))
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _cost(fn, *args) -> dict:
    cost = jax.jit(fn).lower(*args).compile().cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    return {"flops": float(cost["flops"]), "bytes": float(cost["bytes accessed"])}


def inference_vs_train_step(width: int, depth: int, batch: int, repeats: int) -> dict:
    """FLOPs, bytes moved and median wall time of one inference pass and one SGD training step."""
    cfg = mlp.Config(input_dim=width, hidden=(width,) * depth, num_classes=10)
    model = build("mlp", cfg)
    params, state = model.init(jax.random.PRNGKey(0))
    x = jax.random.normal(jax.random.PRNGKey(1), (batch, width))  # (B, d)
    y = jnp.arange(batch) % 10  # (B,)
    tx = optax.sgd(0.01)
    opt_state = tx.init(params)

    def infer(params, x):
        return model.apply(params, x, state=state)[0]  # (B, 10)

    def train_step(params, opt_state, x, y):
        loss, grads = jax.value_and_grad(lambda p: losses.cross_entropy(infer(p, x), y))(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    inf, step = _cost(infer, params, x), _cost(train_step, params, opt_state, x, y)
    return {
        "flops_inference": inf["flops"],
        "flops_train_step": step["flops"],
        "bytes_inference": inf["bytes"],
        "bytes_train_step": step["bytes"],
        "seconds_inference_median": _median_time(jax.jit(infer), params, x, repeats=repeats),
        "seconds_train_step_median": _median_time(
            jax.jit(train_step), params, opt_state, x, y, repeats=repeats
        ),
    }


def softmax_rows(seed: int = 0) -> dict:
    """Softmax of logits up to 1e4: jaxnn's (shift by the max) against the naive formula."""
    z = 1e4 * jax.random.normal(jax.random.PRNGKey(seed), (256, 10))  # (B, 10)
    p = np.asarray(activations.softmax(z))
    naive = np.asarray(jnp.exp(z) / jnp.exp(z).sum(-1, keepdims=True))
    return {
        "max_abs_logit": float(jnp.abs(z).max()),
        "all_finite": bool(np.isfinite(p).all()),
        "min_probability": float(p.min()),
        "max_row_sum_error": float(np.abs(p.sum(-1) - 1.0).max()),
        "naive_nan_rows": int(np.isnan(naive).any(-1).sum()),
        "rows": len(p),
    }


def draw(exp, depths, mem, activation_mb, cost, soft):
    figs, (ax, bx, cx) = panels(3)
    for (label, values), marker in zip(mem.items(), "osD", strict=True):
        ax.plot(depths, np.array(values) / 1e6, marker=marker, label=label)
    ax.plot(
        depths,
        np.array(depths) * activation_mb,
        color=BASELINE,
        linestyle=":",
        label="depth x one activation",
    )
    ax.set_xlabel("depth (dense ReLU layers)")
    ax.set_ylabel("XLA scratch memory (MB)")
    ax.set_title("Memory of one compiled call")
    ax.set_ylim(0, 1.6 * max(max(v) for v in mem.values()) / 1e6)
    ax.legend(loc="upper left")
    kinds = ["FLOPs", "bytes", "time\n(median)"]
    ratios = [
        cost["flops_train_step"] / cost["flops_inference"],
        cost["bytes_train_step"] / cost["bytes_inference"],
        cost["seconds_train_step_median"] / cost["seconds_inference_median"],
    ]
    bars = bx.bar(kinds, ratios, color=[PALETTE[0], PALETTE[0], PALETTE[4]])
    bx.bar_label(bars, fmt="%.2fx")
    baseline_line(bx, 1.0, "inference = 1")
    threshold_line(bx, 2.0, "asserted (FLOPs, bytes): >= 2x")
    bx.set_ylim(0, 1.45 * max(ratios + [2.0]))
    bx.set_ylabel("train step / inference")
    bx.set_title("A training step costs more")
    bx.legend(loc="upper left")
    counts = [
        soft["rows"] if soft["all_finite"] else 0,
        soft["rows"] if soft["max_row_sum_error"] <= 1e-6 else 0,
        soft["naive_nan_rows"],
    ]
    bars = cx.bar(["jaxnn:\nfinite", "jaxnn:\nsum to 1", "naive:\nNaN"], counts,
                  color=[PALETTE[2], PALETTE[2], PALETTE[1]])  # fmt: skip
    cx.bar_label(bars)
    cx.set_ylim(0, 1.2 * soft["rows"])
    cx.set_ylabel(f"rows (of {soft['rows']})")
    cx.set_title(f"Softmax of logits up to {soft['max_abs_logit']:,.0f}")
    exp.save(
        figs,
        "memory_and_cost.png",
        caption="Training's scratch memory climbs with depth (about one activation per layer) "
        "while inference's stays flat and rematerialization flattens it again; a training step "
        "costs several inference passes; softmax stays finite where the naive formula overflows.",
        alt=[
            "Scratch memory against depth: the training line rises like depth times one "
            "activation, inference stays flat near zero, rematerialization rises far slower.",
            "Bars of a training step's cost relative to inference: FLOPs, bytes moved and "
            "median time, each above 2x.",
            f"Bars: all {soft['rows']} rows of jaxnn's softmax finite and summing to one; "
            f"{soft['naive_nan_rows']} rows of the naive formula NaN.",
        ],
    )


def main(argv=None) -> None:
    exp = Experiment("ch05_training_stores_activations", CLAIM, argv)
    if exp.quick:
        width, batch, depths, repeats = 64, 1024, (4, 9, 16, 36), 20
        exp.notes.append("--quick: width 64, depths up to 36; same thresholds")
    else:
        width, batch, depths, repeats = 256, 4096, (4, 9, 16, 36, 64, 100), 50
    mem = memory_by_depth(depths, width, batch)
    activation = batch * width * 4  # bytes of one float32 activation (B, d)
    per_layer = (mem["training"][-1] - mem["training"][0]) / (depths[-1] - depths[0]) / activation
    cost = inference_vs_train_step(width, depth=4, batch=batch, repeats=repeats)
    exp.record(
        width=width,
        batch=batch,
        depths=list(depths),
        activation_bytes=activation,
        scratch_bytes_inference=mem["inference"],
        scratch_bytes_training=mem["training"],
        scratch_bytes_training_remat=mem["training + remat"],
        training_activations_per_extra_layer=per_layer,
        remat_over_plain_at_deepest=mem["training + remat"][-1] / mem["training"][-1],
        flops_ratio_train_over_inference=cost["flops_train_step"] / cost["flops_inference"],
        bytes_ratio_train_over_inference=cost["bytes_train_step"] / cost["bytes_inference"],
        time_ratio_train_over_inference_median=cost["seconds_train_step_median"]
        / cost["seconds_inference_median"],
        **cost,
    )
    soft = softmax_rows()
    exp.record(**{f"softmax_{k}": v for k, v in soft.items()})
    draw(exp, depths, mem, activation / 1e6, cost, soft)

    inf = mem["inference"]
    exp.check(max(inf) <= 1.1 * min(inf), "inference scratch memory does not grow with depth")
    exp.check(
        per_layer >= 0.8,
        f"training keeps >= 0.8 activation per extra layer (measured {per_layer:.2f})",
    )
    exp.check(
        mem["training + remat"][-1] <= 0.5 * mem["training"][-1],
        "rematerialization at least halves the training scratch memory at the deepest stack",
    )
    exp.check(
        cost["flops_train_step"] >= 2 * cost["flops_inference"],
        "a training step needs >= 2x the FLOPs of inference",
    )
    exp.check(
        cost["bytes_train_step"] >= 2 * cost["bytes_inference"],
        "a training step moves >= 2x the bytes of inference",
    )
    exp.check(
        soft["all_finite"] and soft["min_probability"] >= 0 and soft["max_row_sum_error"] <= 1e-6,
        f"softmax of logits up to {soft['max_abs_logit']:.0f} gives finite, non-negative "
        f"probabilities summing to one (max error {soft['max_row_sum_error']:.1e})",
    )
    exp.check(
        soft["naive_nan_rows"] > 0,
        f"the naive exp(z) / sum(exp(z)) overflows to NaN on {soft['naive_nan_rows']} of "
        f"{soft['rows']} rows",
    )
    exp.finish()


if __name__ == "__main__":
    main()
