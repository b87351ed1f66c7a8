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
   in XLA's cost analysis and >= 1.5x the measured time (best of repeats).

``--quick`` uses width 64 and depths up to 36 (full: width 256, batch 4096, depths up to 100;
the same assertions).

Figure: scratch memory against depth (inference, training, training with rematerialization), and
the cost of inference against a training step.

Run: ``python -m experiments.ch05_training_stores_activations [--quick] [--out DIR]``.
"""

from __future__ import annotations

import math
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from experiments.harness import Experiment, plt
from experiments.style import PALETTE
from jaxnn import losses
from jaxnn.layers import dense
from jaxnn.models import build, mlp

CLAIM = (
    "Chapter 5: training stores intermediate activations because backpropagation needs them "
    "(scratch memory grows with depth; inference's does not; rematerialization trades it for "
    "recomputation), and inference costs less than a training step."
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


def _best_time(fn, *args, repeats: int) -> float:
    jax.block_until_ready(fn(*args))
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        best = min(best, time.perf_counter() - t0)
    return best


def _flops(fn, *args) -> float:
    cost = jax.jit(fn).lower(*args).compile().cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    return float(cost["flops"])


def inference_vs_train_step(width: int, depth: int, batch: int, repeats: int) -> dict:
    """FLOPs and best wall time of one inference pass and one SGD training step of an MLP."""
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

    return {
        "flops_inference": _flops(infer, params, x),
        "flops_train_step": _flops(train_step, params, opt_state, x, y),
        "seconds_inference": _best_time(jax.jit(infer), params, x, repeats=repeats),
        "seconds_train_step": _best_time(
            jax.jit(train_step), params, opt_state, x, y, repeats=repeats
        ),
    }


def draw(exp, depths, mem, activation_mb, cost):
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 4.2), gridspec_kw={"width_ratios": [3, 2]})
    for (label, values), marker in zip(mem.items(), "osD", strict=True):
        ax.plot(depths, np.array(values) / 1e6, marker=marker, label=label)
    ax.plot(
        depths,
        np.array(depths) * activation_mb,
        color="#7f7f7f",
        linestyle=":",
        label="depth x one activation (B x d floats)",
    )
    ax.set_xlabel("depth (dense ReLU layers)")
    ax.set_ylabel("XLA scratch memory (MB)")
    ax.set_title("Memory of one compiled call")
    ax.legend()
    kinds = ["inference", "train step"]
    flops = [cost["flops_inference"], cost["flops_train_step"]]
    ms = [cost["seconds_inference"] * 1e3, cost["seconds_train_step"] * 1e3]
    pos = np.arange(2)
    bx.bar(pos - 0.2, np.array(flops) / flops[0], 0.4, color=PALETTE[0], label="FLOPs")
    bx.bar(pos + 0.2, np.array(ms) / ms[0], 0.4, color=PALETTE[1], label="wall time")
    bx.set_xticks(pos, kinds)
    bx.set_ylabel("cost relative to inference (x)")
    bx.set_title(f"MLP, one batch (inference {ms[0]:.2f} ms)")
    bx.legend()
    exp.save(fig, "memory_and_cost.png")


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
        time_ratio_train_over_inference=cost["seconds_train_step"] / cost["seconds_inference"],
        **cost,
    )
    draw(exp, depths, mem, activation / 1e6, cost)

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
        cost["seconds_train_step"] >= 1.5 * cost["seconds_inference"],
        "a training step takes >= 1.5x the time of inference",
    )
    exp.finish()


if __name__ == "__main__":
    main()
