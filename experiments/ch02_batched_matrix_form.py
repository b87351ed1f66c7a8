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
2. Throughput of the jitted model (examples per second, best of repeats) grows with the batch size:
   a batch of 256 processes at least 10x as many examples per second as a batch of 1. The
   per-neuron Python loop's throughput is shown for scale.

``--quick`` measures batch sizes 1 to 1024 with fewer repeats (full: up to 16,384).

Figure: batched against per-neuron outputs, and throughput against batch size (log-log).

Run: ``python -m experiments.ch02_batched_matrix_form [--quick] [--out DIR]``.
"""

from __future__ import annotations

import math
import time

import jax
import numpy as np

from experiments.harness import Experiment, plt
from experiments.style import BASELINE
from jaxnn.models import build, mlp

CLAIM = (
    "Chapter 2: a layer computes every neuron's weighted sum, bias and activation as one matrix "
    "product xW + b (equal to a per-neuron loop), and processing examples in batches raises "
    "throughput."
)


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
    """Examples per second of ``fn(x)``, best of ``repeats`` timed calls after a warm-up."""
    jax.block_until_ready(fn(x))
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(x))
        best = min(best, time.perf_counter() - t0)
    return len(x) / best


def draw(exp, batched, looped, sizes, rates, loop_rate):
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 4.2))
    ax.scatter(looped.ravel(), batched.ravel(), s=10)
    lim = [float(min(looped.min(), batched.min())), float(max(looped.max(), batched.max()))]
    ax.plot(lim, lim, color=BASELINE, linestyle=":", label="y = x")
    err = float(np.abs(batched - looped).max())
    ax.set_xlabel("per-neuron loop output (logit)")
    ax.set_ylabel("batched matrix form output (logit)")
    ax.set_title(f"Same numbers (max |diff| {err:.1e})")
    ax.legend()
    bx.plot(sizes, rates, marker="o", label="jitted matrix form")
    bx.axhline(loop_rate, color=BASELINE, linestyle=":", label="per-neuron Python loop")
    bx.set_xscale("log", base=2)
    bx.set_yscale("log")
    bx.set_xlabel("batch size (examples per call)")
    bx.set_ylabel("throughput (examples / second)")
    bx.set_title("Batching feeds the hardware")
    bx.legend()
    exp.save(fig, "batched_vs_loop.png")


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

    forward = jax.jit(lambda x: model.apply(params, x, state=state)[0])
    sizes = [2**k for k in range(max_log2 + 1)]
    data = np.asarray(jax.random.normal(jax.random.PRNGKey(2), (sizes[-1], 20)))
    rates = [throughput(forward, data[:b], repeats) for b in sizes]
    speedup = rates[sizes.index(256)] / rates[0]
    exp.record(
        max_abs_diff_batched_vs_loop=max_diff,
        batch_sizes=sizes,
        examples_per_second=rates,
        per_neuron_loop_examples_per_second=loop_rate,
        throughput_256_over_1=speedup,
        throughput_largest_over_1=rates[-1] / rates[0],
    )
    draw(exp, batched, looped, sizes, rates, loop_rate)

    exp.check(max_diff < 1e-5, f"the batched form equals the per-neuron loop (max {max_diff:.1e})")
    exp.check(
        speedup >= 10, f"a batch of 256 has >= 10x the throughput of a batch of 1 ({speedup:.0f}x)"
    )
    exp.finish()


if __name__ == "__main__":
    main()
