"""``python -m benchmarks``: jaxnn's train step beside pure JAX, Flax nnx and PyTorch eager.

``jaxnn bench`` runs it from a source checkout.

In one process, on the workloads of :data:`WORKLOADS`, four columns train the same network with
Adam on the same synthetic batches:

* ``jaxnn``: the step :func:`jaxnn.train.fit` runs, ``make_train_step(model, tx, task=...)`` on
  ``jaxnn.models.build(...)`` (metrics, non-finite guard, the model's compiler options);
* ``jax``: a hand-written pure-JAX step with the same math (:mod:`benchmarks.twins_jax`);
* ``flax``: Flax nnx twins (:mod:`benchmarks.twins_flax`), skipped when Flax is missing;
* ``torch``: PyTorch eager twins (:mod:`benchmarks.twins_torch`, ``torch.set_num_threads`` = the
  core count), skipped when PyTorch is missing;
* ``torch_compile``: the same twins under ``torch.compile`` (inductor; on CPU it needs a C++
  compiler), the compile timed apart as the column's first step; marked unavailable, with the
  reason, where it cannot compile.

Method: each column is set up and its first step (the compile, for JAX) timed apart, then
``--warmup`` steps run. ``--rounds`` rounds follow; each round visits the columns in a shuffled
order and times a chunk of ``--steps`` steps per column (waited for at its end), after a 50 ms
sleep (PyTorch's OpenMP threads spin after a parallel region and would slow the next JAX step).
The report gives the median, min and max milliseconds per step over the rounds, examples or tokens
per second, and, from a big ``jnp.dot`` timed in the same run, the f32 matmul peak and each
step's fraction of it (Chapter 5: a dense layer is a matrix product; XLA's cost analysis counts
the step's FLOPs).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import random
import statistics
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxnn import models
from jaxnn.errors import UserError
from jaxnn.host_memory import reuse_freed_memory

__all__ = ["WORKLOADS", "COLUMNS", "Workload", "build_parser", "run", "main", "bench"]

COLUMNS = ("jaxnn", "jax", "flax", "torch", "torch_compile")
LEARNING_RATE = 1e-3
NUM_BATCHES = 4  # distinct batches each column cycles through
SLEEP_S = 0.05


@dataclasses.dataclass(frozen=True)
class Workload:
    """A model, its config, batch size and task; ``quick`` holds the tiny ``--quick`` variant."""

    name: str
    model: str
    cfg: dict
    batch: int
    task: str = "classification"
    quick: dict = dataclasses.field(default_factory=dict)
    quick_batch: int = 8


_TINY_LM = {"vocab_size": 17, "max_len": 8, "dim": 16, "num_heads": 2, "num_layers": 1}
WORKLOADS = {
    w.name: w
    for w in (
        Workload("mlp_b128", "mlp", {"input_dim": 784, "hidden": (512, 512)}, 128,
                 quick={"input_dim": 12, "hidden": (16, 16)}),
        Workload("mlp_b1024", "mlp", {"input_dim": 784, "hidden": (512, 512)}, 1024,
                 quick={"input_dim": 12, "hidden": (16, 16)}),
        Workload("cnn_b128", "cnn", {"input_shape": (28, 28, 1), "channels": (32, 64),
                 "kernel_size": 3, "hidden": 128, "dropout": 0.0}, 128,
                 quick={"input_shape": (8, 8, 1), "channels": (4,), "hidden": 8}),
        Workload("transformer", "transformer", {"vocab_size": 128, "max_len": 128, "dim": 128,
                 "num_heads": 4, "num_layers": 2}, 32, "language_model", _TINY_LM, 2),
        Workload("nanogpt", "transformer", {"vocab_size": 65, "max_len": 64, "dim": 128,
                 "num_heads": 4, "num_layers": 4, "positional": "learned"}, 12,
                 "language_model", {**_TINY_LM, "positional": "learned"}, 2),
        Workload("gru_mnist1d", "rnn", {"input_shape": (40,), "cell": "gru", "hidden": 128},
                 128, quick={"input_shape": (6,), "hidden": 8}),
    )
}  # fmt: skip


def _config(work: Workload, quick: bool):
    module = models.get(work.model)
    return module.Config(**(work.quick if quick else work.cfg))


def _batches(work: Workload, cfg, batch: int, seed: int = 0):
    """``NUM_BATCHES`` synthetic ``(x, y)`` NumPy batches of the workload's shapes."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(NUM_BATCHES):
        if work.task == "language_model":
            ids = rng.integers(0, cfg.vocab_size, (batch, cfg.max_len + 1)).astype(np.int32)
            out.append((ids[:, :-1], ids[:, 1:]))
            continue
        shape = (cfg.input_dim,) if work.model == "mlp" else tuple(cfg.input_shape)
        x = rng.standard_normal((batch, *shape)).astype(np.float32)
        out.append((x, rng.integers(0, cfg.num_classes, batch).astype(np.int32)))
    return out


def _jax_runner(step, state, batches):
    """``run(k)``: ``k`` steps of a jitted ``step(state, x, y) -> (state, out)``, waited for."""
    dev = [jax.device_put(b) for b in batches]
    box = {"state": state, "out": None, "i": 0}

    def run(k: int) -> None:
        for _ in range(k):
            x, y = dev[box["i"] % len(dev)]
            box["state"], box["out"] = step(box["state"], x, y)
            box["i"] += 1
        jax.block_until_ready((box["state"], box["out"]))

    return run


def _flops(step, state, batch) -> float | None:
    """FLOPs of one step from XLA's cost analysis (None when the backend gives none)."""
    try:
        state = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype), state)
        cost = step.lower(state, *batch).compile().cost_analysis()
        cost = cost[0] if isinstance(cost, list) else cost
        return float(cost["flops"]) or None
    except Exception:  # noqa: BLE001 - cost analysis is best effort
        return None


def _setup_jaxnn(work, cfg, batches, options):
    from jaxnn.train.state import create_train_state
    from jaxnn.train.step import make_train_step

    model = models.build(work.model, cfg)
    tx = optax.adam(LEARNING_RATE)
    step = make_train_step(model, tx, task=work.task, **options)
    state = create_train_state(model, tx, 0)
    return step, state


def _setup_jax(work, cfg, batches, options):
    from benchmarks import twins_jax

    params, _ = models.build(work.model, cfg).init(jax.random.key(0))
    return twins_jax.make_step(work.model, cfg, params, lr=LEARNING_RATE)


def _setup_flax(work, cfg, batches, options):
    from benchmarks import twins_flax

    return twins_flax.make_step(work.model, cfg, lr=LEARNING_RATE)


class Unavailable(Exception):
    """A column that is installed but cannot run here (its reason is the message)."""


def _setup_torch(work, cfg, batches, options, *, compiled: bool = False):
    import torch
    import torch.nn.functional as F

    from benchmarks import twins_torch

    torch.manual_seed(0)
    twin = twins_torch.build_torch_twin(models.build(work.model, cfg)).train()
    opt = torch.optim.Adam(twin.parameters(), lr=LEARNING_RATE)
    model = torch.compile(twin) if compiled else twin  # inductor, the default backend
    lm = work.task == "language_model"
    tb = [
        (torch.as_tensor(x, dtype=torch.long if lm else torch.float32), torch.as_tensor(y).long())
        for x, y in batches
    ]
    box = {"i": 0}

    def run(k: int) -> None:
        for _ in range(k):
            x, y = tb[box["i"] % len(tb)]
            opt.zero_grad(set_to_none=True)
            logits = model(x)
            F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1)).backward()
            opt.step()
            box["i"] += 1

    return run


def _setup_torch_compile(work, cfg, batches, options):
    return _setup_torch(work, cfg, batches, options, compiled=True)


_SETUP = {
    "jaxnn": _setup_jaxnn,
    "jax": _setup_jax,
    "flax": _setup_flax,
    "torch": _setup_torch,
    "torch_compile": _setup_torch_compile,
}


def _make_column(column, work, cfg, batches, options):
    """``(run, times, flops)`` for one column; raises ImportError when it cannot run.

    ``times`` holds ``setup_s`` (model, params and optimizer state) and ``first_step_s`` (the
    first step: tracing and compiling it, for JAX, then running it), timed apart. The FLOPs come
    from XLA's cost analysis of the jaxnn step only, after those timings.
    """
    start = time.perf_counter()
    made = _SETUP[column](work, cfg, batches, options)
    jax.block_until_ready(made if not callable(made) else None)
    setup_s = time.perf_counter() - start
    run = made if callable(made) else _jax_runner(*made, batches)  # PyTorch: no compile
    start = time.perf_counter()
    try:
        run(1)  # torch.compile compiles here
    except Exception as err:
        if column != "torch_compile":
            raise
        reason = f"torch.compile failed at its first step ({type(err).__name__}: {err})"
        raise Unavailable(reason[:300]) from None
    times = {"setup_s": setup_s, "first_step_s": time.perf_counter() - start}
    flops = None
    if column == "jaxnn":
        step, state = made
        flops = _flops(step, state, [jax.device_put(b) for b in batches[0]])
    return run, times, flops


def matmul_peak_gflops(n: int = 2048, repeats: int = 5) -> float:
    """Best f32 ``jnp.dot`` throughput of an ``n x n`` product, GFLOP/s (``2 n^3`` per product)."""
    a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
    dot = jax.jit(jnp.dot)
    dot(a, a).block_until_ready()
    best = float("inf")
    for _ in range(repeats):
        time.sleep(SLEEP_S)
        start = time.perf_counter()
        dot(a, a).block_until_ready()
        best = min(best, time.perf_counter() - start)
    return 2.0 * n**3 / best / 1e9


def _time_rounds(runners: dict, *, rounds: int, steps: int, seed: int) -> tuple[dict, dict]:
    """Per-step wall and process-CPU milliseconds of each runner, one value per round.

    The column order is shuffled every round. The CPU time (all threads of this process) is the
    steadier measure on a machine shared with other jobs, where wall time includes waiting.
    """
    order = list(runners)
    wall = {name: [] for name in runners}
    cpu = {name: [] for name in runners}
    shuffle = random.Random(seed)
    for _ in range(rounds):
        shuffle.shuffle(order)
        for name in order:
            time.sleep(SLEEP_S)
            start, start_cpu = time.perf_counter(), time.process_time()
            runners[name](steps)
            wall[name].append(1e3 * (time.perf_counter() - start) / steps)
            cpu[name].append(1e3 * (time.process_time() - start_cpu) / steps)
    return wall, cpu


def _summary(ms: list[float], units: int, flops, peak) -> dict:
    median = statistics.median(ms)
    row = {"median_ms": median, "min_ms": min(ms), "max_ms": max(ms), "rounds_ms": ms}
    row["per_second"] = units / (median / 1e3)
    if flops:
        row["gflops"] = flops / (median / 1e3) / 1e9
        row["fraction_of_peak"] = row["gflops"] / peak if peak else None
    return row


def bench_workload(work: Workload, args, peak: float, options: dict) -> dict:
    """Set up every column of ``work``, time them in shuffled rounds, return the JSON record."""
    cfg = _config(work, args.quick)
    batch = work.quick_batch if args.quick else work.batch
    batches = _batches(work, cfg, batch)
    lm = work.task == "language_model"
    units = batch * (cfg.max_len if lm else 1)
    record = {"model": work.model, "config": dataclasses.asdict(cfg), "batch": batch}
    record.update(units="tokens" if lm else "examples", units_per_step=units, columns={})
    runners, extra = {}, {}
    for column in args.columns:
        try:
            run, times, flops = _make_column(column, work, cfg, batches, options)
        except ImportError as err:
            missing = getattr(err, "name", None) or column
            record["columns"][column] = {
                "status": "not installed", "reason": f"{missing} is not installed ({err})",
            }  # fmt: skip
            continue
        except Unavailable as err:
            record["columns"][column] = {"status": "unavailable", "reason": str(err)}
            continue
        run(args.warmup)
        runners[column], extra[column] = run, {**times, "flops": flops}
    times, cpu = _time_rounds(runners, rounds=args.rounds, steps=args.steps, seed=args.seed)
    flops = extra.get("jaxnn", {}).get("flops")
    for column, ms in times.items():
        row = {"status": "ok", **extra[column], **_summary(ms, units, flops, peak)}
        row["cpu_median_ms"], row["cpu_rounds_ms"] = statistics.median(cpu[column]), cpu[column]
        record["columns"][column] = row
    record["ratios"] = _ratios(record["columns"])
    return record


def _ratios(cols: dict) -> dict:
    """``jaxnn_vs_<col>``: the other column's median over jaxnn's (> 1: jaxnn is faster)."""
    if cols.get("jaxnn", {}).get("status") != "ok":
        return {}
    base = cols["jaxnn"]["median_ms"]
    return {
        f"jaxnn_vs_{c}": row["median_ms"] / base
        for c, row in cols.items()
        if c != "jaxnn" and row.get("status") == "ok"
    }


def _environment(peak: float) -> dict:
    env = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "jax": jax.__version__,
        "backend": jax.default_backend(),
        "devices": [str(d) for d in jax.devices()],
        "matmul_peak_gflops": peak,
    }
    for name in ("flax", "torch", "optax"):
        try:
            env[name] = __import__(name).__version__
        except ImportError:
            env[name] = None
    try:
        import torch

        torch.set_num_threads(os.cpu_count())
        env["torch_threads"] = torch.get_num_threads()
    except ImportError:
        pass
    return env


def _cell(row: dict) -> str:
    """A column's cell: median (min–max) ms per step, or why it has none."""
    status = row.get("status")
    if status == "ok":
        return f"{row['median_ms']:.3g} ({row['min_ms']:.3g}–{row['max_ms']:.3g})"
    if status == "unavailable":
        return "unavailable"
    return "not installed" if status in ("not installed", "skipped") else "not run"


def _percent(fraction) -> str:
    """A fraction of the matmul peak: ``0.0031`` -> ``"0.31%"`` (never a bare ``0%``)."""
    if fraction is None:
        return "n/a (no FLOP count)"
    percent = 100 * fraction
    return f"{percent:.0f}%" if percent >= 10 else f"{percent:.2g}%"


def _ratio(value) -> str:
    return f"{value:.2f}x" if value else "n/a"


def markdown_table(report: dict) -> str:
    """The report as a Markdown table: the examples (or tokens) per step, median (min–max) ms per
    step, ratios, and jaxnn's throughput (per step divided by the median: the columns agree),
    then one line per column that could not run, saying why."""
    cols = report["columns"]
    head = ["workload", "per step", *[f"{c} ms" for c in cols]]
    head += [f"jaxnn vs {c}" for c in cols[1:]]
    head += ["jaxnn per s", "jaxnn % of matmul peak", "jaxnn setup s", "jaxnn first step s"]
    compiled = "torch_compile" in cols
    head += ["torch.compile first step s"] if compiled else []
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    missing = {}
    for name, rec in report["workloads"].items():
        row = [rec["columns"].get(c, {}) for c in cols]
        missing.update({c: r for c, r in zip(cols, row, strict=True) if "reason" in r})
        j = rec["columns"].get("jaxnn", {})
        cells = [name, f"{rec['units_per_step']} {rec['units']}", *map(_cell, row)]
        cells += [_ratio(rec["ratios"].get(f"jaxnn_vs_{c}")) for c in cols[1:]]
        cells += [
            f"{j['per_second']:,.0f} {rec['units']}" if "per_second" in j else "n/a",
            _percent(j.get("fraction_of_peak")) if j.get("status") == "ok" else "n/a",
            *(f"{j[k]:.2f}" if k in j else "n/a" for k in ("setup_s", "first_step_s")),
        ]
        if compiled:
            first = rec["columns"].get("torch_compile", {}).get("first_step_s")
            cells.append(f"{first:.2f}" if first is not None else "n/a")
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        f"\n{c}: {r['reason']}"
        + ("; install it to time this column" if r.get("status") != "unavailable" else "")
        for c, r in missing.items()
    ]
    return "\n".join(lines)


def _check_args(args) -> None:
    names = [n for n in (args.only or ",".join(WORKLOADS)).split(",") if n]
    unknown = [n for n in names if n not in WORKLOADS]
    if unknown:
        raise UserError(
            f"jaxnn bench: expected workloads from {', '.join(WORKLOADS)}, got {unknown}; "
            f"pass --only with names from that list"
        )
    columns = [c for c in args.columns.split(",") if c]
    if not columns or any(c not in COLUMNS for c in columns):
        raise UserError(
            f"jaxnn bench: expected columns from {', '.join(COLUMNS)}, got {args.columns!r}"
        )
    args.workloads, args.columns = names, [c for c in COLUMNS if c in columns]


def bench(args) -> dict:
    """Run the benchmark described by parsed ``args``; return the report (JSON-ready)."""
    _check_args(args)
    reuse_freed_memory()  # process-wide, so every column gets it (jaxnn.host_memory)
    if args.quick:
        args.rounds, args.steps, args.warmup = min(args.rounds, 2), 1, 1
    peak = matmul_peak_gflops(256 if args.quick else 2048, 2 if args.quick else 5)
    env = _environment(peak)
    options = {} if args.step_options is None else json.loads(args.step_options)
    if args.dtype != "float32":
        options["compute_dtype"] = args.dtype
    report = {"environment": env, "columns": args.columns, "quick": args.quick}
    report["method"] = {k: getattr(args, k) for k in ("rounds", "steps", "warmup", "seed")}
    report["step_options"] = options
    report["workloads"] = {}
    for name in args.workloads:
        report["workloads"][name] = bench_workload(WORKLOADS[name], args, peak, options)
        print(f"{name}: done", file=sys.stderr, flush=True)
    return report


def build_parser() -> argparse.ArgumentParser:
    """The arguments of ``python -m benchmarks`` (and of ``jaxnn bench``, which runs it)."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description=" ".join(__doc__.split("\n\n")[0].split()).replace("``", ""),
    )
    _add_arguments(parser)
    return parser


def _add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--only", default="", help=f"workloads, comma-separated: {','.join(WORKLOADS)}")
    p.add_argument("--columns", default=",".join(COLUMNS), help="subset of " + ",".join(COLUMNS))
    p.add_argument("--quick", action="store_true", help="tiny sizes and repeats (for CI)")
    p.add_argument("--rounds", type=int, default=7, help="timed rounds per column")
    p.add_argument("--steps", type=int, default=10, help="steps per timed chunk")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps after the first")
    p.add_argument("--seed", type=int, default=0, help="seed of the round order")
    p.add_argument("--json", default=None, help="write the report to this path")
    p.add_argument(
        "--step-options", default=None, help="JSON dict of extra make_train_step keywords"
    )
    p.add_argument(
        "--dtype",
        default="float32",
        choices=("float32", "bfloat16"),
        help="jaxnn column's compute dtype (bfloat16: mixed precision, float32 master params)",
    )


def run(args) -> int:
    """Entry point of ``jaxnn bench``: print the table, write ``--json``; returns 0."""
    report = bench(args)
    print(markdown_table(report))
    print(
        f"\nmatmul peak {report['environment']['matmul_peak_gflops']:.1f} GFLOP/s f32, "
        f"{report['environment']['backend']}, jax {jax.__version__}"
    )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)
    return 0


def main(argv=None) -> int:
    """``python -m benchmarks``: one line for an expected failure, exit 2."""
    try:
        return run(build_parser().parse_args(argv))
    except UserError as err:
        print(f"python -m benchmarks: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
