"""Is the input pipeline the bottleneck? Input time per batch vs one train step, on MNIST-1D.

For an MLP and a small 1-D CNN (Chapter 9: the pipeline should keep the model busy) it measures,
per batch of the standardized MNIST-1D training split:

- ``input_ms``: host time to produce a shuffled batch with ``jaxnn.data.pipeline.batches``;
- ``put_ms``: ``jax.device_put`` of that batch (waited for);
- ``augment_ms``: the jitted ``shift`` augmentation on device;
- ``step_ms``: one jitted optax Adam train step (forward, backward, update), waited for;
- ``epoch_serial_ms`` / ``epoch_prefetch_ms``: a whole epoch, batches fed directly or through
  ``prefetch_to_device`` (the median of ``--epochs`` epochs after a warm-up one).

Usage:

    PYTHONPATH=. python scripts/bench_input_pipeline.py [--batch-size 128] [--epochs 5] \\
        [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import jax
import jax.numpy as jnp
import optax

from jaxnn import data
from jaxnn.data import augment, pipeline
from jaxnn.layers import conv1d, dense, init_conv1d, init_dense


def init_mlp(key):
    k1, k2, k3 = jax.random.split(key, 3)
    return {
        "h1": init_dense(k1, 40, 256),
        "h2": init_dense(k2, 256, 256),
        "out": init_dense(k3, 256, 10),
    }


def apply_mlp(params, x):  # x (B, 40)
    h = jax.nn.relu(dense(params["h1"], x))
    h = jax.nn.relu(dense(params["h2"], h))
    return dense(params["out"], h)  # (B, 10)


def init_cnn(key):
    k1, k2, k3 = jax.random.split(key, 3)
    return {
        "c1": init_conv1d(k1, 5, 1, 32),
        "c2": init_conv1d(k2, 5, 32, 32),
        "out": init_dense(k3, 20 * 32, 10),
    }


def apply_cnn(params, x):  # x (B, 40)
    h = jax.nn.relu(conv1d(params["c1"], x[..., None]))  # (B, 40, 32)
    h = jax.nn.relu(conv1d(params["c2"], h, stride=2))  # (B, 20, 32)
    return dense(params["out"], h.reshape(len(h), -1))  # (B, 10)


def make_step(apply, tx):
    def loss_fn(params, x, y):
        logits = apply(params, x)
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    @jax.jit
    def step(params, opt_state, x, y):
        loss, grads = jax.value_and_grad(loss_fn)(params, x, y)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    return step


def _median_ms(times):
    return 1e3 * statistics.median(times)


def bench_model(name, init, apply, splits, batch_size, epochs) -> dict:
    tx = optax.adam(1e-3)
    params = init(jax.random.key(0))
    opt_state = tx.init(params)
    step = make_step(apply, tx)
    shift = jax.jit(augment.get_augment("shift", splits.info))
    train = splits.train

    def epoch_batches(epoch):
        return pipeline.batches(train, batch_size, seed=0, epoch=epoch)

    # warm-up: compile the step and the augmentation
    x0, y0 = next(iter(epoch_batches(0)))
    params, opt_state, loss = step(params, opt_state, jnp.asarray(x0), jnp.asarray(y0))
    shift(jax.random.key(0), jnp.asarray(x0)).block_until_ready()
    loss.block_until_ready()

    input_t, put_t, aug_t, step_t = [], [], [], []
    for epoch in range(epochs):
        it = iter(epoch_batches(epoch))
        while True:
            t0 = time.perf_counter()
            try:
                x, y = next(it)
            except StopIteration:
                break
            t1 = time.perf_counter()
            xd, yd = jax.block_until_ready(jax.device_put((x, y)))
            t2 = time.perf_counter()
            shift(jax.random.key(epoch), xd).block_until_ready()
            t3 = time.perf_counter()
            params, opt_state, loss = step(params, opt_state, xd, yd)
            loss.block_until_ready()
            t4 = time.perf_counter()
            input_t.append(t1 - t0)
            put_t.append(t2 - t1)
            aug_t.append(t3 - t2)
            step_t.append(t4 - t3)

    def run_epoch(epoch, prefetch):
        nonlocal params, opt_state
        source = epoch_batches(epoch)
        source = pipeline.prefetch_to_device(source, size=2) if prefetch else source
        t0 = time.perf_counter()
        loss = None
        for x, y in source:
            params, opt_state, loss = step(params, opt_state, x, y)
        loss.block_until_ready()
        return time.perf_counter() - t0

    serial, prefetched = [], []
    run_epoch(0, True)  # warm the prefetch thread path
    for epoch in range(epochs):  # alternate so drift on a shared machine hits both
        serial.append(run_epoch(epoch, False))
        prefetched.append(run_epoch(epoch, True))
    steps = pipeline.num_batches(len(train), batch_size, drop_remainder=True)
    row = {
        "model": name,
        "steps_per_epoch": steps,
        "input_ms": _median_ms(input_t),
        "put_ms": _median_ms(put_t),
        "augment_ms": _median_ms(aug_t),
        "step_ms": _median_ms(step_t),
        "epoch_serial_ms": _median_ms(serial),
        "epoch_prefetch_ms": _median_ms(prefetched),
    }
    row["input_over_step"] = (row["input_ms"] + row["put_ms"]) / row["step_ms"]
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--json", default=None, help="also write the rows to this file")
    args = parser.parse_args()

    splits, _ = pipeline.standardize(data.load("mnist1d", seed=0))
    rows = [
        bench_model("mlp", init_mlp, apply_mlp, splits, args.batch_size, args.epochs),
        bench_model("cnn", init_cnn, apply_cnn, splits, args.batch_size, args.epochs),
    ]
    print(
        f"device: {jax.devices()[0].device_kind}, batch {args.batch_size}, "
        f"MNIST-1D train {len(splits.train)}"
    )
    cols = [
        "input_ms",
        "put_ms",
        "augment_ms",
        "step_ms",
        "input_over_step",
        "epoch_serial_ms",
        "epoch_prefetch_ms",
    ]
    print(f"{'model':6s} " + " ".join(f"{c:>17s}" for c in cols))
    for r in rows:
        print(f"{r['model']:6s} " + " ".join(f"{r[c]:17.3f}" for c in cols))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": jax.devices()[0].device_kind, "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
