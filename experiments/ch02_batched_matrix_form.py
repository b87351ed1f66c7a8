"""Chapter 2: a layer is one matrix product; a batch goes through it at once, and faster.

The book's claim: a neuron is one coordinate of a transformed vector (a weighted sum, a bias and
an activation), so a whole layer is the affine map ``xW + b``; matrix notation is compact and
matches hardware acceleration, and a batch is a group of examples processed together for
efficient training.

Measured here:

1. An MLP ``20-32-16-5`` (``jaxnn.models.build("mlp", ...)``, ReLU) applied to a batch of 32
   examples equals the same network written neuron by neuron in plain Python floats (for each
   example, for each neuron: ``act(sum_i x_i w_ij + b_j)``): the largest difference is float32
   rounding (asserted below 1e-5 absolute).
2. What a batch costs, from XLA's cost analysis of the compiled forward pass at batch sizes 1 to
   4,096 (deterministic, machine independent): the floating-point operations per example are the
   same at every batch size (asserted equal to 1 part in 10^4), while the bytes moved per example
   fall with the batch size (the weights are read once per call, whatever the batch): asserted
   never to rise, and at batch 256 at least 5x below batch 1. That is the hardware's side of the
   claim: more arithmetic per byte moved.
3. Throughput of the jitted model (examples per second, median of repeats) against the batch
   size, with the per-neuron Python loop for scale: drawn and reported, not asserted (a time
   depends on the machine and its load).

``--quick`` times batch sizes up to 1,024 with fewer repeats (the cost analysis covers every
size in both modes).

Figure: batched against per-neuron outputs; FLOPs and bytes per example against the batch size;
throughput against the batch size (log-log).

Run: ``python -m experiments.ch02_batched_matrix_form [--quick] [--out DIR]``.
"""

from __future__ import annotations

import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

from experiments.harness import Experiment
from experiments.style import BASELINE, PALETTE, panels, threshold_line
from jaxnn.models import build, mlp

CLAIM = (
    "Chapter 2: a layer computes every neuron's weighted sum, bias and activation as one matrix "
    "product xW + b (equal to a per-neuron loop), and a batch reuses each weight it reads: the "
    "bytes moved per example fall with the batch size while the arithmetic per example stays "
    "the same."
)
COST_SIZES = tuple(2**k for k in range(13))


def per_neuron(params: dict, x: np.ndarray) -> np.ndarray:
    """The MLP written one neuron at a time in Python floats: ``relu(sum_i x_i w_ij + b_j)``."""
    names = sorted(params, key=lambda name: int(name.split("_")[1]))
    weights = [
        (np.asarray(params[n]["w"]).tolist(), np.asarray(params[n]["b"]).tolist()) for n in names
    ]
    out = []
    for example in np.asarray(x).tolist():
        h = example
        for depth, (w, b) in enumerate(weights):
            last = depth == len(weights) - 1
            nxt = []
            for j in range(len(b)):
                z = b[j]
                for i, h_i in enumerate(h):
                    z += h_i * w[i][j]
                nxt.append(z if last else max(z, 0.0))
            h = nxt
        out.append(h)
    return np.array(out)  # (B, num_classes)


def throughput(fn, x, repeats: int) -> float:
    """Examples per second of ``fn(x)``, from the median of ``repeats`` timed calls after a
    warm-up."""
    jax.block_until_ready(fn(x))
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(x))
        times.append(time.perf_counter() - t0)
    return len(x) / statistics.median(times)


def cost_per_example(forward, params, sizes) -> dict:
    """FLOPs and bytes moved per example of the compiled forward pass, from XLA's cost analysis."""
    rows = {"flops": [], "bytes": []}
    for b in sizes:
        x = jax.ShapeDtypeStruct((b, 20), jnp.float32)
        cost = jax.jit(forward).lower(params, x).compile().cost_analysis()
        cost = cost[0] if isinstance(cost, list) else cost
        rows["flops"].append(float(cost["flops"]) / b)
        rows["bytes"].append(float(cost["bytes accessed"]) / b)
    return rows


def draw(exp, batched, looped, cost, sizes, rates, loop_rate):
    figs, (ax, bx, cx) = panels(3)
    ax.scatter(looped.ravel(), batched.ravel(), s=10, label="one output")
    lim = [float(min(looped.min(), batched.min())), float(max(looped.max(), batched.max()))]
    ax.plot(lim, lim, color=BASELINE, linestyle=":", label="y = x")
    err = float(np.abs(batched - looped).max())
    ax.set_xlabel("per-neuron loop output (logit)")
    ax.set_ylabel("matrix form output (logit)")
    ax.set_title(f"Same numbers (max |diff| {err:.1e})")
    ax.legend(loc="upper left")
    bx.plot(COST_SIZES, cost["bytes"], marker="o", color=PALETTE[1], label="bytes moved")
    bx.plot(COST_SIZES, cost["flops"], marker="s", color=PALETTE[0], label="FLOPs")
    at1 = cost["bytes"][0]
    threshold_line(bx, at1 / 5, "asserted at 256: <= 1/5 of batch 1")
    bx.axvline(256, color=BASELINE, ls=":", lw=1)
    bx.set_xscale("log", base=2)
    bx.set_yscale("log")
    bx.set_xlabel("batch size (examples per call)")
    bx.set_ylabel("per example (XLA cost analysis)")
    bx.set_title("A batch reads each weight once")
    bx.legend(loc="center right")
    cx.plot(sizes, rates, marker="o", label="jitted matrix form")
    cx.axhline(loop_rate, color=BASELINE, linestyle=":", label="per-neuron Python loop")
    cx.set_xscale("log", base=2)
    cx.set_yscale("log")
    cx.set_ylim(loop_rate / 3, 3 * max(rates))
    cx.set_xlabel("batch size (examples per call)")
    cx.set_ylabel("examples / second (median)")
    cx.set_title("Throughput on this machine")
    cx.legend(loc="lower right")
    exp.save(
        figs,
        "batched_vs_loop.png",
        caption="The matrix form gives the loop's numbers; per example, a batch moves fewer "
        "bytes for the same FLOPs, and the measured throughput climbs with it.",
        alt=[
            "Scatter of the batched outputs against the per-neuron loop's: every point on the "
            "diagonal.",
            "FLOPs per example flat across batch sizes; bytes moved per example falling from "
            "batch 1 and levelling off.",
            "Examples per second against batch size on log axes, rising by orders of magnitude "
            "above the flat per-neuron loop.",
        ],
    )


def main(argv=None) -> None:
    exp = Experiment("ch02_batched_matrix_form", CLAIM, argv)
    if exp.quick:
        max_log2, repeats = 10, 20
        exp.notes.append("--quick: batch sizes up to 1,024, 20 timed repeats; same thresholds")
    else:
        max_log2, repeats = 14, 100
    cfg = mlp.Config(input_dim=20, hidden=(32, 16), num_classes=5)
    model = build("mlp", cfg)
    params, state = model.init(jax.random.PRNGKey(0))
    x = np.asarray(jax.random.normal(jax.random.PRNGKey(1), (32, 20)))  # (B, 20)
    batched = np.asarray(model.apply(params, x, state=state)[0])  # (B, 5)
    t0 = time.perf_counter()
    looped = per_neuron(params, x)  # (B, 5)
    loop_rate = len(x) / (time.perf_counter() - t0)
    max_diff = float(np.abs(batched - looped).max())

    cost = cost_per_example(lambda p, x: model.apply(p, x, state=state)[0], params, COST_SIZES)
    forward = jax.jit(lambda x: model.apply(params, x, state=state)[0])
    sizes = [2**k for k in range(max_log2 + 1)]
    data = np.asarray(jax.random.normal(jax.random.PRNGKey(2), (sizes[-1], 20)))
    rates = [throughput(forward, data[:b], repeats) for b in sizes]
    at256 = COST_SIZES.index(256)
    bytes_ratio = cost["bytes"][0] / cost["bytes"][at256]
    exp.record(
        max_abs_diff_batched_vs_loop=max_diff,
        cost_batch_sizes=list(COST_SIZES),
        flops_per_example=cost["flops"],
        bytes_per_example=cost["bytes"],
        bytes_per_example_1_over_256=bytes_ratio,
        batch_sizes=sizes,
        examples_per_second_median=rates,
        per_neuron_loop_examples_per_second=loop_rate,
        throughput_256_over_1=rates[sizes.index(256)] / rates[0],
    )
    draw(exp, batched, looped, cost, sizes, rates, loop_rate)

    exp.check(max_diff < 1e-5, f"the batched form equals the per-neuron loop (max {max_diff:.1e})")
    flops = cost["flops"]
    exp.check(
        max(flops) <= min(flops) * (1 + 1e-4),
        f"the FLOPs per example are the same at every batch size ({flops[0]:,.0f})",
    )
    steps = np.diff(cost["bytes"])
    exp.check(
        bool((steps <= 0).all()) and bytes_ratio >= 5,
        f"the bytes moved per example never rise with the batch size and are {bytes_ratio:.1f}x "
        "fewer at batch 256 than at batch 1 (>= 5x)",
    )
    exp.finish()


if __name__ == "__main__":
    main()
