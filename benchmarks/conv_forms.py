"""Formulations of the CNN step at batch 128 on CPU, timed beside jaxnn's and PyTorch eager.

The ``cnn_b128`` workload of :mod:`benchmarks.bench` (28x28 images with one channel, two 3x3
convolutions of 32 and 64 channels each followed by ReLU and a 2x2 max pool, a dense layer of 128,
Adam) is written here once per way of computing its convolutions, each as a hand-written JAX step
(:mod:`benchmarks.twins_jax`'s cross-entropy and Adam) and jitted with and without XLA's CPU library
fusion of dot products (``+ynn``, the option jaxnn's CNN step uses):

* ``nhwc``: ``lax.conv_general_dilated`` with channels last, jaxnn's layout;
* ``nchw``: channels first (PyTorch's layout) for both convolutions;
* ``patch1``: the first convolution (one input channel, 9 multiply-adds per output) as a matrix
  product of its 3x3 patches (im2col) with the ``(9, 32)`` kernel;
* ``taps1``: the first convolution as a sum of 9 shifted views times a row of the kernel (no patch
  buffer);
* ``patch12``: both convolutions as patch matrix products;
* ``bf16``: both convolutions on bfloat16 inputs and kernels, accumulating in float32.

Every form's logits are compared with ``nhwc``'s on the first batch (``maxerr``); the float32 forms
compute the same function, the bf16 one rounds its inputs. The columns are timed in shuffled,
interleaved rounds with jaxnn's own step (``jaxnn``) and PyTorch eager (``torch``, where installed)
in the same process, after the host-memory setting that ``jaxnn bench`` applies
(:mod:`jaxnn.host_memory`); compile time is the first step's, apart.

Usage: ``python -m benchmarks.conv_forms [--forms nhwc,patch1] [--rounds 9] [--steps 10]
[--quick] [--json PATH]``
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import sys
import time

import jax
import jax.numpy as jnp
from jax import lax

from benchmarks import bench, twins_jax
from jaxnn import models
from jaxnn.host_memory import reuse_freed_memory
from jaxnn.layers.conv import _tile_max

YNN_DOT = {"xla_cpu_experimental_ynn_fusion_type": "LIBRARY_FUSION_TYPE_DOT"}


def _same_pads(k: int) -> tuple[int, int]:
    return (k - 1) // 2, k // 2  # SAME for stride 1, as lax pads it


def conv_nhwc(h, w, dtype=None):
    """``lax`` convolution, channels last; with ``dtype`` its operands are cast, f32 accumulated."""
    if dtype is not None:
        h, w = h.astype(dtype), w.astype(dtype)
    spec = ("NHWC", "HWIO", "NHWC")
    out = jnp.float32 if dtype is not None else None
    return lax.conv_general_dilated(
        h, w, (1, 1), "SAME", dimension_numbers=spec, preferred_element_type=out
    )


def _padded_views(h, k):
    """The ``k * k`` SAME-padded shifted views ``(B, H, W, C)`` of ``h``, tap-major."""
    pad = _same_pads(k)
    hp = jnp.pad(h, ((0, 0), pad, pad, (0, 0)))
    height, width = h.shape[1:3]
    return [hp[:, u : u + height, v : v + width, :] for u in range(k) for v in range(k)]


def conv_patch(h, w):
    """im2col: ``(B, H, W, k*k*C)`` patches times the ``(k*k*C, O)`` kernel."""
    k, _, c, o = w.shape
    return jnp.concatenate(_padded_views(h, k), -1) @ w.reshape(k * k * c, o)


def conv_taps(h, w):
    """A sum over the ``k * k`` taps of a shifted view times that tap's ``(C, O)`` kernel."""
    k = w.shape[0]
    taps = [(u, v) for u in range(k) for v in range(k)]
    views = _padded_views(h, k)
    return functools.reduce(jnp.add, [x @ w[u, v] for x, (u, v) in zip(views, taps, strict=True)])


def channels_last(convs):
    """The forward pass with one convolution function per layer, channels last."""

    def forward(params, x, shape):
        h = x.reshape(x.shape[0], *shape)
        for i, conv in enumerate(convs):
            p = params[f"conv_{i}"]
            h = _tile_max(jnp.maximum(conv(h, p["w"]) + p["b"], 0.0), (2, 2))
        return twins_jax.cnn_head(params, h)

    return forward


def channels_first(params, x, shape):
    """The forward pass in NCHW; the dense layer sees the features in jaxnn's (H, W, C) order."""
    h = x.reshape(x.shape[0], *shape).transpose(0, 3, 1, 2)
    spec = ("NCHW", "HWIO", "NCHW")
    for i in range(sum(k.startswith("conv_") for k in params)):
        p = params[f"conv_{i}"]
        h = lax.conv_general_dilated(h, p["w"], (1, 1), "SAME", dimension_numbers=spec)
        h = jnp.maximum(h + p["b"][:, None, None], 0.0)
        h = _tile_max(h.transpose(0, 2, 3, 1), (2, 2)).transpose(0, 3, 1, 2)
    return twins_jax.cnn_head(params, h.transpose(0, 2, 3, 1))


def forms(n_convs: int) -> dict:
    """Name -> ``forward(params, x, shape) -> logits`` for a CNN of ``n_convs`` convolutions."""
    bf16 = functools.partial(conv_nhwc, dtype=jnp.bfloat16)
    rest = [conv_nhwc] * (n_convs - 1)
    return {
        "nhwc": channels_last([conv_nhwc] * n_convs),
        "nchw": channels_first,
        "patch1": channels_last([conv_patch, *rest]),
        "taps1": channels_last([conv_taps, *rest]),
        "patch12": channels_last([conv_patch] * n_convs),
        "bf16": channels_last([bf16] * n_convs),
    }


def run(argv=None) -> dict:
    """Time the forms; print the table and return ``{"rows": {name: {...}}, ...}``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--forms", default="nhwc,nchw,patch1,taps1,patch12,bf16")
    parser.add_argument("--rounds", type=int, default=9, help="interleaved rounds (median)")
    parser.add_argument("--steps", type=int, default=10, help="steps per round")
    parser.add_argument("--quick", action="store_true", help="the workload's tiny config, 2x2")
    parser.add_argument("--no-torch", action="store_true", help="leave PyTorch eager out")
    parser.add_argument("--json", help="write the rows here")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.steps = 2, 2
    chosen = args.forms.split(",")
    unknown = sorted(set(chosen) - set(forms(1)))
    if unknown:
        parser.error(f"--forms: expected names from {sorted(forms(1))}, got {unknown}")
    reuse_freed_memory()  # as jaxnn bench does, before the first computation
    work = bench.WORKLOADS["cnn_b128"]
    cfg = bench._config(work, args.quick)
    batch = work.quick_batch if args.quick else work.batch
    batches = bench._batches(work, cfg, batch)
    params, _ = models.build("cnn", cfg).init(jax.random.key(0))
    table = forms(len(cfg.channels))
    x0 = jnp.asarray(batches[0][0])
    shape = tuple(cfg.input_shape)
    reference = table["nhwc"](params, x0, shape)
    runners, rows = {}, {}
    for name in chosen:
        err = float(jnp.max(jnp.abs(table[name](params, x0, shape) - reference)))
        for suffix, options in (("", None), ("+ynn", YNN_DOT)):
            logits = functools.partial(table[name], shape=shape)
            made = twins_jax.adam_step(
                logits, jax.tree.map(jnp.copy, params), lr=bench.LEARNING_RATE,
                compiler_options=options,
            )  # fmt: skip
            runner = bench._jax_runner(*made, batches)
            start = time.perf_counter()
            runner(1)
            rows[name + suffix] = {"first_step_s": time.perf_counter() - start, "maxerr": err}
            runners[name + suffix] = runner
    made = bench._setup_jaxnn(work, cfg, batches, {})
    runners["jaxnn"] = bench._jax_runner(*made, batches)
    runners["jaxnn"](1)
    rows["jaxnn"] = {"first_step_s": None, "maxerr": None}
    if not args.no_torch:
        try:
            runners["torch"] = bench._setup_torch(work, cfg, batches, {})
            runners["torch"](1)
            rows["torch"] = {"first_step_s": None, "maxerr": None}
        except ImportError:
            print("PyTorch is not installed: no torch column", file=sys.stderr)
    for runner in runners.values():
        runner(2)  # warm-up
    wall, _ = bench._time_rounds(runners, rounds=args.rounds, steps=args.steps, seed=0)
    base = statistics.median(wall["torch" if "torch" in wall else "jaxnn"])
    print(f"jax {jax.__version__}, {os.cpu_count()} CPUs, batch {batch}, {args.rounds} rounds")
    print(f"{'form':<14} {'step ms':>8} {'min ms':>7} {'first s':>8} {'maxerr':>9} {'vs base':>7}")
    for name in sorted(wall, key=lambda k: statistics.median(wall[k])):
        row = rows[name]
        row.update(median_ms=statistics.median(wall[name]), rounds_ms=wall[name])
        first = "" if row["first_step_s"] is None else f"{row['first_step_s']:.2f}"
        err = "" if row["maxerr"] is None else f"{row['maxerr']:.1e}"
        print(
            f"{name:<14} {row['median_ms']:>8.2f} {min(wall[name]):>7.2f} {first:>8} {err:>9} "
            f"{base / row['median_ms']:>6.2f}x"
        )
    print("vs base: the torch column's median over the row's (jaxnn's where PyTorch is absent)")
    record = {"batch": batch, "rounds": args.rounds, "steps": args.steps, "rows": rows}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(record, f, indent=1)
    return record


if __name__ == "__main__":
    run()
