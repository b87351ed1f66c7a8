"""Peak memory and step time of a training step with and without rematerialization (Chapter 5).

Chapter 5: training stores the forward pass's activations for the backward pass. With
``remat=True`` (:class:`jaxnn.models.transformer.Config`, :class:`jaxnn.models.mlp.Config`) the
backward pass recomputes them instead. For each workload the script compiles the real train step,
``jaxnn.train.step.make_train_step(model, optax.adam(1e-3), task=...)`` on
``jaxnn.models.build(...)``, lowered with an abstract state (``jax.eval_shape`` of the initial
state and ``ShapeDtypeStruct`` inputs), and reports XLA's own accounting of the compiled program
(``compiled.memory_analysis()``): ``temp`` (scratch memory: stored activations, gradients,
optimizer temporaries), ``argument`` and ``output`` bytes. Then it times steps of each mode,
interleaved (none, remat, none, remat, ...) so that drift on a shared machine hits both, and
reports the median step time.

Workloads: the Transformer language model of ``jaxnn bench`` (vocab 128, max_len 128, dim 128,
4 heads, 2 layers, batch 32), the same with 8 layers, and a deep MLP (16 hidden layers of 512) at
batch 1024 and 4096. For the Transformers a third mode, ``ckpt_unrolled``, wraps each block of the
unrolled Python loop in ``jax.checkpoint`` (what ``remat`` does not do): on XLA:CPU it saves no
memory, because the CPU pipeline drops the optimization barriers before scheduling and every
recomputation is then scheduled during the forward pass.

Usage::

    python -m benchmarks.memory [--quick] [--rounds 5] [--inner 3] [--json out.json]

``--quick`` uses small shapes and one timed round (seconds; for tests). Timings on a shared
machine are noisy: compare rows of the same run only.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import statistics
import sys
import time
from unittest import mock

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxnn import models
from jaxnn.host_memory import reuse_freed_memory
from jaxnn.layers.attention import transformer_block
from jaxnn.models import transformer
from jaxnn.train.state import create_train_state
from jaxnn.train.step import make_train_step

_LM = {"vocab_size": 128, "max_len": 128, "dim": 128, "num_heads": 4, "num_layers": 2}
_LM_QUICK = {"vocab_size": 32, "max_len": 32, "dim": 32, "num_heads": 2, "num_layers": 2}
_MLP = {"input_dim": 512, "hidden": (512,) * 16, "num_classes": 10}
_MLP_QUICK = {"input_dim": 64, "hidden": (64,) * 16, "num_classes": 10}

#: name -> (model, config fields, batch, task); the full size and the --quick size.
WORKLOADS = {
    "transformer_l2": ("transformer", _LM, 32, "language_model"),
    "transformer_l8": ("transformer", {**_LM, "num_layers": 8}, 32, "language_model"),
    "mlp_16x512": ("mlp", _MLP, 1024, "classification"),
    "mlp_16x512_b4096": ("mlp", _MLP, 4096, "classification"),
}
QUICK = {
    "transformer_l2": ("transformer", _LM_QUICK, 8, "language_model"),
    "transformer_l8": ("transformer", {**_LM_QUICK, "num_layers": 8}, 8, "language_model"),
    "mlp_16x512": ("mlp", _MLP_QUICK, 256, "classification"),
    "mlp_16x512_b4096": ("mlp", _MLP_QUICK, 1024, "classification"),
}


@contextlib.contextmanager
def _checkpointed_blocks():
    """While tracing: every Transformer block of the unrolled loop wrapped in ``jax.checkpoint``."""

    def block(params, x, *, key=None, **static):
        run = jax.checkpoint(lambda p, x, k: transformer_block(p, x, key=k, **static))
        return run(params, x, key)

    with mock.patch.object(transformer, "transformer_block", block):
        yield


def _modes(model_name: str) -> tuple[str, ...]:
    return ("none", "remat", "ckpt_unrolled") if model_name == "transformer" else ("none", "remat")


def _inputs(cfg, batch: int, task: str, rng) -> tuple[np.ndarray, np.ndarray]:
    if task == "language_model":
        ids = rng.integers(0, cfg.vocab_size, (batch, cfg.max_len + 1)).astype(np.int32)
        return ids[:, :-1], ids[:, 1:]
    x = rng.normal(size=(batch, cfg.input_dim)).astype(np.float32)
    return x, rng.integers(0, cfg.num_classes, batch).astype(np.int32)


def compile_step(model_name: str, fields: dict, batch: int, task: str, mode: str):
    """``(model, compiled train step, optimizer)`` for one mode, lowered with abstract inputs."""
    model = models.build(model_name, None, **fields, remat=mode == "remat")
    tx = optax.adam(1e-3)
    state = jax.eval_shape(functools.partial(create_train_state, model, tx, 0))
    x, y = _inputs(model.cfg, batch, task, np.random.default_rng(0))
    abstract = [jax.ShapeDtypeStruct(a.shape, a.dtype) for a in (x, y)]
    step = make_train_step(model, tx, task=task)
    patch = _checkpointed_blocks() if mode == "ckpt_unrolled" else contextlib.nullcontext()
    with patch:
        compiled = step.lower(state, *abstract).compile()
    return model, compiled, tx


def memory(compiled) -> dict | None:
    """The bytes of XLA's memory analysis, or None where the backend gives none."""
    stats = compiled.memory_analysis()
    if stats is None:
        return None
    names = ("temp", "argument", "output", "alias", "generated_code")
    return {f"{n}_bytes": int(getattr(stats, f"{n}_size_in_bytes")) for n in names}


def time_steps(runs: dict, rounds: int, inner: int) -> dict:
    """Median ms per step of each mode, the modes interleaved round by round."""
    per_step = {mode: [] for mode in runs}
    for _ in range(rounds):
        for mode, run in runs.items():
            t0 = time.perf_counter()
            for _ in range(inner):
                run["state"], metrics = run["step"](run["state"], *run["batch"])
            jax.block_until_ready((run["state"], metrics))
            per_step[mode].append(1e3 * (time.perf_counter() - t0) / inner)
    return {
        mode: {"step_ms": statistics.median(ms), "rounds_ms": ms} for mode, ms in per_step.items()
    }


def bench_workload(spec, rounds: int, inner: int) -> dict:
    """Memory and step time of every mode of one workload."""
    model_name, fields, batch, task = spec
    runs, record = {}, {"model": model_name, "config": fields, "batch": batch, "modes": {}}
    for mode in _modes(model_name):
        model, compiled, tx = compile_step(model_name, fields, batch, task, mode)
        record["modes"][mode] = {"memory": memory(compiled)}
        x, y = _inputs(model.cfg, batch, task, np.random.default_rng(1))
        state = create_train_state(model, tx, 0)
        runs[mode] = {"step": compiled, "state": state, "batch": (jnp.asarray(x), jnp.asarray(y))}
        for _ in range(2):  # warm-up: the first calls of an executable are slower
            runs[mode]["state"], _ = compiled(runs[mode]["state"], *runs[mode]["batch"])
        jax.block_until_ready(runs[mode]["state"])
    for mode, timing in time_steps(runs, rounds, inner).items():
        record["modes"][mode].update(timing)
    record["ratios"] = _ratios(record["modes"])
    return record


def _ratios(modes: dict) -> dict:
    """Each mode's temp bytes and step time over those of ``none``."""
    base = modes["none"]
    out = {}
    for mode, row in modes.items():
        if mode == "none":
            continue
        out[f"{mode}_time"] = row["step_ms"] / base["step_ms"]
        if row["memory"] is not None and base["memory"] is not None:
            out[f"{mode}_temp"] = row["memory"]["temp_bytes"] / base["memory"]["temp_bytes"]
    return out


def table(workloads: dict) -> str:
    """The markdown table of a report's workloads."""
    mb = lambda row, k: f"{row['memory'][k] / 2**20:.1f}" if row["memory"] else "n/a"
    lines = [
        "| workload | mode | temp MiB | argument MiB | output MiB | temp vs none | step ms | "
        "time vs none |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, rec in workloads.items():
        for mode, row in rec["modes"].items():
            temp = rec["ratios"].get(f"{mode}_temp", 1.0 if mode == "none" else None)
            speed = rec["ratios"].get(f"{mode}_time", 1.0)
            lines.append(
                f"| {name} | {mode} | {mb(row, 'temp_bytes')} | {mb(row, 'argument_bytes')} | "
                f"{mb(row, 'output_bytes')} | {'n/a' if temp is None else f'{temp:.2f}x'} | "
                f"{row['step_ms']:.1f} | {speed:.2f}x |"
            )
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small shapes, one timed round")
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds per mode (default 5)")
    parser.add_argument("--inner", type=int, default=3, help="steps per timed round (default 3)")
    parser.add_argument("--only", default=",".join(WORKLOADS), help="comma-separated workloads")
    parser.add_argument("--json", default="", help="write the report to this file")
    args = parser.parse_args(argv)
    specs = QUICK if args.quick else WORKLOADS
    names = [n for n in args.only.split(",") if n]
    unknown = sorted(set(names) - set(specs))
    if unknown:
        parser.error(f"--only: expected names from {', '.join(specs)}, got {', '.join(unknown)}")
    rounds, inner = (1, 1) if args.quick else (args.rounds, args.inner)
    reuse_freed_memory()  # as jaxnn bench and the CLI do, before the first computation
    report = {
        "quick": args.quick,
        "backend": jax.default_backend(),
        "device": str(jax.devices()[0]),
        "jax": jax.__version__,
        "method": {"rounds": rounds, "inner": inner, "optimizer": "adam(1e-3)"},
        "workloads": {name: bench_workload(specs[name], rounds, inner) for name in names},
    }
    print(table(report["workloads"]))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
