"""Time a CNN training step on CPU: XLA compiler option and pooling path (Chapter 11 models).

One training step is ``value_and_grad`` of the cross-entropy of :func:`jaxnn.models.cnn.apply`
plus an ``optax.adam`` update, jitted. For two models (the default MNIST-1D CNN on ``(40,)``
signals and a small 2-D CNN on 28x28 images) the script times every combination of

* compiler options: none, or ``xla_cpu_experimental_ynn_fusion_type=LIBRARY_FUSION_TYPE_DOT``
  (routes the convolutions' dot products to a library kernel that uses every core; the default
  fused convolution runs on one core);
* pooling: the reshape + max path, or ``lax.reduce_window``.

Compile time is measured apart (``lower(...).compile()``); then a few warm-up steps, then
``--repeats`` timings of ``--inner`` steps each, reporting the median and the minimum per step.
Timings on a shared machine are noisy: compare rows from the same run only.

Usage: ``python -m benchmarks.conv_cpu [--repeats 7] [--inner 20] [--batch 100] [--quick]``
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxnn.models import cnn

YNN_DOT = {"xla_cpu_experimental_ynn_fusion_type": "LIBRARY_FUSION_TYPE_DOT"}

MODELS = {
    "mnist1d-cnn (40,)": cnn.Config(),
    "2d-cnn 28x28x1": cnn.Config(
        input_shape=(28, 28, 1), channels=(16, 32), kernel_size=3, hidden=128
    ),
}


def make_step(cfg: cnn.Config, compiler_options: dict | None):
    """A jitted training step ``(params, opt_state, x, y, key) -> (params, opt_state, loss)``."""
    opt = optax.adam(1e-3)

    def loss_fn(params, x, y, key):
        logits = cnn.apply(params, x, cfg=cfg, train=True, key=key)[0]  # (B, classes)
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    def step(params, opt_state, x, y, key):
        loss, grads = jax.value_and_grad(loss_fn)(params, x, y, key)
        updates, opt_state = opt.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    return jax.jit(step, compiler_options=compiler_options), opt


def time_step(cfg: cnn.Config, compiler_options, *, batch: int, repeats: int, inner: int):
    """Return ``(compile_s, median_step_s, min_step_s, final_loss)``."""
    step, opt = make_step(cfg, compiler_options)
    params = cnn.init(jax.random.key(0), cfg)
    opt_state = opt.init(params)
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal((batch, *cfg.input_shape)), jnp.float32)  # (B, ...)
    y = jnp.asarray(rng.integers(0, cfg.num_classes, batch))  # (B,)
    key = jax.random.key(1)

    start = time.perf_counter()
    compiled = step.lower(params, opt_state, x, y, key).compile()
    compile_s = time.perf_counter() - start

    for _ in range(3):  # warm-up
        params, opt_state, loss = compiled(params, opt_state, x, y, key)
    jax.block_until_ready(loss)
    per_step = []
    for _ in range(repeats):
        start = time.perf_counter()
        for i in range(inner):
            params, opt_state, loss = compiled(params, opt_state, x, y, jax.random.fold_in(key, i))
        jax.block_until_ready((params, loss))
        per_step.append((time.perf_counter() - start) / inner)
    return compile_s, statistics.median(per_step), min(per_step), float(loss)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7, help="timed repeats (>= 5 advised)")
    parser.add_argument("--inner", type=int, default=20, help="steps per timed repeat")
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--quick", action="store_true", help="2 repeats of 3 steps, batch 16")
    args = parser.parse_args(argv)
    if args.quick:
        args.repeats, args.inner, args.batch = 2, 3, 16

    print(f"jax {jax.__version__}, backend {jax.default_backend()}, {os.cpu_count()} CPUs")
    print(f"batch {args.batch}, {args.repeats} repeats x {args.inner} steps, median per step\n")
    header = (
        f"{'model':<20} {'pooling':<14} {'compiler option':<16} {'compile s':>9} "
        f"{'step ms':>8} {'min ms':>7} {'speedup':>7}"
    )
    print(header)
    print("-" * len(header))
    for name, base in MODELS.items():
        baseline = None
        for pool_method in ("reduce_window", "reshape"):
            for opt_name, options in (("none", None), ("ynn dot fusion", YNN_DOT)):
                cfg = cnn.Config(**{**vars(base), "pool_method": pool_method})
                compile_s, median, fastest, _ = time_step(
                    cfg, options, batch=args.batch, repeats=args.repeats, inner=args.inner
                )
                baseline = median if baseline is None else baseline
                print(
                    f"{name:<20} {pool_method:<14} {opt_name:<16} {compile_s:>9.2f} "
                    f"{median * 1e3:>8.2f} {fastest * 1e3:>7.2f} {baseline / median:>6.2f}x",
                    flush=True,
                )
    print("\nspeedup: against the first row of the same model (reduce_window, no option).")


if __name__ == "__main__":
    main()
