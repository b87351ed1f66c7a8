"""Is the input pipeline the bottleneck? Input time per step vs the train step, on MNIST-1D.

For the default MLP and CNN (``jaxnn.models.build(name, config_for(info))``) it times, per step
and as the median over ``--repeats`` epochs after a warm-up epoch:

- ``step_ms``: the loop's jitted step (``FitConfig.device_data=True``: it gathers its batch on
  device from B indices) with every input already on device: no input work at all;
- ``device_ms``: the same epoch fed as the loop feeds it, the permutation rows as NumPy arrays
  moved by the call, so ``device_ms - step_ms`` is the input cost of the default loop;
- ``host_ms``: the streaming path (``device_data=False``): host batches from
  ``jaxnn.data.pipeline.batches`` passed to the plain jitted step; its reference ``host_step_ms``
  is the plain step with every batch already on device.

Chapter 9 asks that the pipeline keep the model busy: the input fraction is
``(fed - step) / step``; it can come out slightly negative when the two are within noise.

Usage:

    python -m benchmarks.input_pipeline [--batch-size 128] [--repeats 9] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import jax

from jaxnn import data, models, optim
from jaxnn._xla import jit
from jaxnn.data import pipeline
from jaxnn.train.state import create_train_state
from jaxnn.train.step import make_indexed_step, make_train_step


def _ms_per_step(run_epoch, repeats: int, steps: int) -> float:
    run_epoch()  # warm-up
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        run_epoch()
        times.append((time.perf_counter() - t) / steps)
    return 1e3 * statistics.median(times)


def bench(name: str, splits, batch_size: int, repeats: int) -> dict:
    module = models.get(name)
    model = models.build(name, module.config_for(splits.info))
    tx, _ = optim.make_optimizer("adam", 1e-3)
    raw = make_train_step(model, tx, jitted=False)
    indexed = jit(make_indexed_step(raw), workload=name, donate_argnums=0)
    plain = jit(raw, workload=name, donate_argnums=0)
    train = splits.train
    x_all, y_all = jax.device_put((train.x, train.y))
    steps = pipeline.num_batches(len(train), batch_size, drop_remainder=True)
    perm = pipeline.epoch_permutation(len(train), seed=0, epoch=0)
    rows = list(perm[: steps * batch_size].reshape(steps, batch_size))
    rows_on_device = jax.block_until_ready(jax.device_put(rows))
    batches_on_device = jax.block_until_ready(
        jax.device_put(list(pipeline.batches(train, batch_size, seed=0, epoch=0)))
    )
    box = {"state": create_train_state(model, tx, 0)}

    def run(step, inputs):
        def epoch():
            state = box["state"]
            for args in inputs():
                state, metrics = step(state, *args)
            box["state"] = jax.block_until_ready(state)

        return epoch

    t = time.perf_counter()
    run(indexed, lambda: [(x_all, y_all, rows_on_device[0])])()
    compile_s = time.perf_counter() - t
    r = {"model": name, "compile_s": compile_s}
    r["step_ms"] = _ms_per_step(
        run(indexed, lambda: ((x_all, y_all, i) for i in rows_on_device)), repeats, steps
    )
    r["device_ms"] = _ms_per_step(
        run(indexed, lambda: ((x_all, y_all, i) for i in rows)), repeats, steps
    )
    r["host_step_ms"] = _ms_per_step(run(plain, lambda: batches_on_device), repeats, steps)
    r["host_ms"] = _ms_per_step(
        run(plain, lambda: pipeline.batches(train, batch_size, seed=0, epoch=1)), repeats, steps
    )
    r["device_input_fraction"] = (r["device_ms"] - r["step_ms"]) / r["step_ms"]
    r["host_input_fraction"] = (r["host_ms"] - r["host_step_ms"]) / r["host_step_ms"]
    return r


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--models", default="mlp,cnn")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    splits, _ = pipeline.standardize(data.load("mnist1d", seed=0))
    print(
        f"backend {jax.default_backend()} ({jax.devices()[0]}), MNIST-1D, batch {args.batch_size}"
    )
    cols = ("model", "step ms", "fed ms", "input", "host step", "host fed", "input", "compile s")
    print("{:<6}{:>9}{:>9}{:>8}{:>11}{:>10}{:>8}{:>11}".format(*cols))
    results = []
    for name in args.models.split(","):
        r = bench(name, splits, args.batch_size, args.repeats)
        results.append(r)
        print(
            f"{name:<6}{r['step_ms']:>9.3f}{r['device_ms']:>9.3f}{r['device_input_fraction']:>8.1%}"
            f"{r['host_step_ms']:>11.3f}{r['host_ms']:>10.3f}{r['host_input_fraction']:>8.1%}"
            f"{r['compile_s']:>11.2f}"
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    return results


if __name__ == "__main__":
    main()
