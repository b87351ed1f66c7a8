"""Per-device memory and step time on a one-axis and a two-axis mesh (Chapter 15 at scale).

For each workload the script builds jaxnn's real train step (``make_train_step`` with Adam), puts
the train state on the mesh with :mod:`jaxnn.sharding`'s rule, as ``jaxnn train --mesh`` does, and
jits the step with the state's shardings. Two meshes of the same devices: ``data=N`` (parameters
and optimizer state replicated) and ``data=N/2,fsdp=2`` (the large ones split along ``fsdp``).

Per mesh it reports:

- ``state_MiB``: parameters and optimizer state one device holds, summed over the live arrays'
  addressable shards (:func:`jaxnn.sharding.device_bytes`), not computed from shapes;
- ``xla_arg_MiB``, ``xla_temp_MiB``: XLA's accounting of the compiled SPMD step per device
  (``compiled.memory_analysis()``: argument and scratch bytes);
- ``step_ms``: the median wall time of a step over the timed rounds (the meshes interleaved).

On CPU the devices are host threads (``--xla_force_host_platform_device_count``, set by the
script when there are too few devices): the memory columns mean what they would on accelerators,
the step times only compare the two meshes on this machine.

Usage::

    python -m benchmarks.sharding [--devices 4] [--quick] [--rounds 5] [--steps 5] [--json F]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import jax
import numpy as np
import optax

from jaxnn import models, parallel, sharding
from jaxnn.train.state import create_train_state
from jaxnn.train.step import make_train_step

_LM = {"vocab_size": 256, "max_len": 64, "dim": 256, "num_heads": 4, "num_layers": 4}
_LM_QUICK = {"vocab_size": 32, "max_len": 16, "dim": 64, "num_heads": 2, "num_layers": 1}
_MLP = {"input_dim": 512, "hidden": (1024, 1024), "num_classes": 10}
_MLP_QUICK = {"input_dim": 64, "hidden": (128,), "num_classes": 10}

#: name -> (model, config, quick config, batch, task)
WORKLOADS = {
    "transformer_lm": ("transformer", _LM, _LM_QUICK, 16, "language_model"),
    "mlp": ("mlp", _MLP, _MLP_QUICK, 256, "classification"),
}
MIB = 2**20


def _batch(fields: dict, batch: int, task: str, seed: int = 0):
    rng = np.random.default_rng(seed)
    if task == "language_model":
        ids = rng.integers(0, fields["vocab_size"], (batch, fields["max_len"] + 1), np.int32)
        return ids[:, :-1], ids[:, 1:]
    x = rng.standard_normal((batch, fields["input_dim"]), dtype=np.float32)
    return x, rng.integers(0, fields["num_classes"], batch, dtype=np.int32)


def _setup(name: str, fields: dict, batch: int, task: str, mesh):
    """The placed state, the jitted step and the sharded batch of one workload on one mesh."""
    model = models.build(name, **fields)
    tx = optax.adam(1e-3)
    state = create_train_state(model, tx, seed=0)
    state = sharding.place(state, sharding.state_shardings(state, mesh))
    step = jax.jit(
        make_train_step(model, tx, task=task, jitted=False),
        donate_argnums=0,
        **sharding.step_jit_kwargs(mesh, state),
    )
    xy = parallel.shard_batch(_batch(fields, batch, task), mesh)
    compiled = step.lower(state, *xy).compile()
    return {"state": state, "step": step, "xy": xy, "memory": compiled.memory_analysis()}


def _row(setup: dict, ms: list[float]) -> dict:
    held = sharding.device_bytes((setup["state"].params, setup["state"].opt_state))
    stats = setup["memory"]
    return {
        "state_MiB": max(held.values()) / MIB,
        "xla_arg_MiB": None if stats is None else stats.argument_size_in_bytes / MIB,
        "xla_temp_MiB": None if stats is None else stats.temp_size_in_bytes / MIB,
        "step_ms": statistics.median(ms),
    }


def bench_workload(work: str, args) -> dict:
    """One workload on both meshes: ``{mesh spelling: row}``."""
    name, fields, quick, batch, task = WORKLOADS[work]
    fields = quick if args.quick else fields
    n = args.devices
    meshes = {f"data={n}": {"data": n}, f"data={n // 2},fsdp=2": {"data": n // 2, "fsdp": 2}}
    setups = {
        spec: _setup(name, fields, batch, task, parallel.make_named_mesh(sizes))
        for spec, sizes in meshes.items()
    }
    times: dict[str, list[float]] = {spec: [] for spec in setups}
    for _ in range(args.rounds):
        for spec, s in setups.items():  # interleaved: drift on a shared machine hits both
            t0 = time.perf_counter()
            for _ in range(args.steps):
                s["state"], metrics = s["step"](s["state"], *s["xy"])
            jax.block_until_ready(metrics)
            times[spec].append(1e3 * (time.perf_counter() - t0) / args.steps)
    return {spec: _row(s, times[spec]) for spec, s in setups.items()}


def markdown_table(report: dict) -> str:
    """The report as a Markdown table, one row per (workload, mesh)."""

    def cell(v):
        return "n/a" if v is None else f"{v:.2f}"

    lines = [
        "| workload | mesh | state MiB/device | XLA args MiB | XLA temp MiB | step ms |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for work, rows in report["workloads"].items():
        for spec, r in rows.items():
            cols = (r["state_MiB"], r["xla_arg_MiB"], r["xla_temp_MiB"], r["step_ms"])
            lines.append(f"| {work} | {spec} | " + " | ".join(cell(v) for v in cols) + " |")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    """The script's flags."""
    p = argparse.ArgumentParser(prog="python -m benchmarks.sharding", description=__doc__)
    p.add_argument("--devices", type=int, default=4, help="devices of both meshes (even).")
    p.add_argument("--quick", action="store_true", help="small shapes, one round (for tests).")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--json", default="", help="also write the report here.")
    return p


def _rerun_with_devices(argv, devices: int) -> int:
    """Run the script again in a process with ``devices`` fake CPU devices."""
    env = dict(os.environ)
    flag = f"--xla_force_host_platform_device_count={devices}"
    env["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} {flag}".strip()
    cmd = [sys.executable, "-m", "benchmarks.sharding", *argv]
    return subprocess.run(cmd, env=env, check=False).returncode


def main(argv=None) -> int:
    """Benchmark every workload on both meshes and print the table (and write ``--json``)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    if args.devices < 2 or args.devices % 2:
        raise SystemExit(f"--devices: expected an even count >= 2, got {args.devices}")
    if args.quick:
        args.rounds, args.steps = 1, 2
    if len(jax.devices()) < args.devices:
        if jax.default_backend() != "cpu":
            raise SystemExit(f"--devices: expected <= {len(jax.devices())}, got {args.devices}")
        return _rerun_with_devices(argv, args.devices)
    report = {
        "backend": jax.default_backend(),
        "devices": args.devices,
        "workloads": {work: bench_workload(work, args) for work in WORKLOADS},
    }
    print(markdown_table(report), flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
