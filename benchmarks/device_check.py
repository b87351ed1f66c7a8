"""The accelerator check: tests, benchmarks, a GPT-style step's MFU and a trained LM, in one run.

``scripts/device_check.sh`` runs this module. On a machine with a GPU (or TPU) it runs, within
about 8 minutes:

1. ``tests``: the suite's device-relevant subset (steps, models, attention, checkpoints, the
   mesh) on the accelerator;
2. ``bench``: ``python -m benchmarks`` (the jaxnn and hand-written JAX columns) on the
   accelerator;
3. ``gpt``: a GPT-style Transformer language model large enough to load the chip (12 layers,
   width 1024, 16 heads, context 1024, batch 32) trained in bfloat16 (float32 master params),
   reporting step time, tokens per second and MFU;
4. ``train``: ``jaxnn train`` of the Transformer LM on the ``pydoc_text`` corpus until its best
   validation loss reaches ``--target-loss``.

**The FLOP count** of the MFU (PaLM, appendix B): a step on ``tokens = batch * context`` tokens
costs ``6 * N * tokens + 12 * L * d * T * tokens`` FLOPs, where ``N`` is the number of
parameters (embeddings included), ``L`` the layers, ``d`` the width and ``T`` the context: the
first term is the forward and backward matmuls of every parameter, the second the attention
scores and their weighted sum (the causal mask's zero half counted, as PaLM does). MFU is those
FLOPs per second over the chip's peak: ``--peak-tflops``, or the bf16 dense peak of a known
device (H100/H200: 989, A100: 312), or else the measured peak of a large bf16 matmul.

``--cpu`` is the short mode CI runs (under a minute): one small test file, ``--quick``
benchmarks, a small GPT and a short LM run with a loose target, all on the CPU.

Usage::

    python -m benchmarks.device_check [--cpu] [--json out.json] [--target-loss L] [--skip S,...]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STAGES = ("tests", "bench", "gpt", "train")
DEVICE_TESTS = [
    f"tests/test_{name}.py"
    for name in ("step", "models", "attention", "transformer", "checkpoint", "mesh")
]
CPU_TESTS = ["tests/test_mesh.py"]
#: bf16 dense peak TFLOP/s by a substring of ``device_kind``.
PEAK_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L4": 121.0}

GPT = {"vocab_size": 256, "max_len": 1024, "dim": 1024, "num_heads": 16, "num_layers": 12}
GPT_BATCH = 32
GPT_CPU = {"vocab_size": 64, "max_len": 64, "dim": 64, "num_heads": 2, "num_layers": 2}
GPT_CPU_BATCH = 8

#: ``jaxnn train`` flags of the LM run; the model config and target per mode.
LM_FLAGS = ["--model", "transformer", "--dataset", "pydoc_text", "--optimizer", "adamw",
            "--lr", "1e-3", "--weight-decay", "0.01", "--schedule", "warmup_cosine",
            "--warmup-steps", "100", "--no-progress", "--patience", "0"]  # fmt: skip
LM = {"epochs": 8, "batch": 64, "model": "dim=256,num_heads=4,num_layers=4", "seq_len": 128}
LM_CPU = {"epochs": 1, "batch": 32, "model": "dim=32,num_heads=2,num_layers=1", "seq_len": 32}
TARGET, TARGET_CPU = 1.6, 3.2  # validation cross-entropy, nats per character


def _run(cmd: list[str], timeout: float) -> dict:
    t0 = time.perf_counter()
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    tail = (done.stdout + done.stderr).strip().splitlines()[-5:]
    return {"ok": done.returncode == 0, "seconds": time.perf_counter() - t0, "tail": tail}


def stage_tests(cpu: bool) -> dict:
    """The device-relevant test subset, on the default backend."""
    files = CPU_TESTS if cpu else DEVICE_TESTS
    return _run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *files], 420)


def stage_bench(cpu: bool) -> dict:
    """``python -m benchmarks`` (jaxnn and JAX columns; ``--quick`` on CPU)."""
    cmd = [sys.executable, "-m", "benchmarks", "--columns", "jaxnn,jax"]
    cmd += ["--quick", "--only", "mlp_b128"] if cpu else ["--dtype", "bfloat16"]
    return _run(cmd, 300)


def gpt_flops(cfg: dict, params: int, batch: int) -> float:
    """FLOPs of one train step: ``6 N tokens + 12 L d T tokens`` (see the module docstring)."""
    tokens = batch * cfg["max_len"]
    attention = 12 * cfg["num_layers"] * cfg["dim"] * cfg["max_len"] * tokens
    return 6.0 * params * tokens + attention


def _peak_flops(peak_tflops: float | None) -> tuple[float, str]:
    """The chip's peak FLOP/s and where the figure comes from."""
    import jax
    import jax.numpy as jnp

    if peak_tflops:
        return peak_tflops * 1e12, "--peak-tflops"
    kind = jax.devices()[0].device_kind
    for name, tflops in PEAK_TFLOPS.items():
        if name in kind:
            return tflops * 1e12, f"bf16 dense peak of {name}"
    n = 1024 if jax.default_backend() == "cpu" else 8192
    a = jnp.ones((n, n), jnp.bfloat16)
    mm = jax.jit(lambda a: a @ a)
    mm(a).block_until_ready()
    t0 = time.perf_counter()
    for _ in range(5):
        out = mm(a)
    out.block_until_ready()
    return 5 * 2 * n**3 / (time.perf_counter() - t0), f"measured {n}x{n} bf16 matmul"


def stage_gpt(cpu: bool, peak_tflops: float | None = None, steps: int = 10) -> dict:
    """Time the GPT-style step in bfloat16 and report its MFU."""
    import jax
    import numpy as np
    import optax

    from jaxnn import models
    from jaxnn.train.state import create_train_state
    from jaxnn.train.step import make_train_step

    cfg, batch = (GPT_CPU, GPT_CPU_BATCH) if cpu else (GPT, GPT_BATCH)
    model = models.build("transformer", **cfg)
    tx = optax.adamw(3e-4)
    state = create_train_state(model, tx, seed=0)
    params = sum(x.size for x in jax.tree.leaves(state.params))
    step = make_train_step(model, tx, task="language_model", compute_dtype="bfloat16")
    ids = np.random.default_rng(0).integers(0, cfg["vocab_size"], (batch, cfg["max_len"] + 1))
    x, y = jax.device_put((ids[:, :-1].astype(np.int32), ids[:, 1:].astype(np.int32)))
    for _ in range(2):  # compile, warm up
        state, metrics = step(state, x, y)
    jax.block_until_ready(metrics)
    t0 = time.perf_counter()
    for _ in range(steps):
        state, metrics = step(state, x, y)
    jax.block_until_ready(metrics)
    seconds = (time.perf_counter() - t0) / steps
    flops = gpt_flops(cfg, params, batch)
    peak, source = _peak_flops(peak_tflops)
    return {
        "ok": bool(np.isfinite(float(metrics["loss"]))),
        "config": {**cfg, "batch": batch, "dtype": "bfloat16"},
        "params": int(params),
        "step_ms": 1e3 * seconds,
        "tokens_per_s": batch * cfg["max_len"] / seconds,
        "flops_per_step": flops,
        "flop_count": "6*N*tokens + 12*L*d*T*tokens",
        "peak_tflops": peak / 1e12,
        "peak_source": source,
        "mfu": flops / seconds / peak,
        "device": jax.devices()[0].device_kind,
    }


def stage_train(cpu: bool, target: float | None = None) -> dict:
    """``jaxnn train`` of the Transformer LM on ``pydoc_text``; ok when the best validation
    loss reaches the target."""
    lm = LM_CPU if cpu else LM
    target = target if target is not None else (TARGET_CPU if cpu else TARGET)
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "jaxnn", "train", *LM_FLAGS, "--out", f"{tmp}/lm",
               "--epochs", str(lm["epochs"]), "--batch-size", str(lm["batch"]),
               "--data-option", f"seq_len={lm['seq_len']}"]  # fmt: skip
        for pair in lm["model"].split(","):
            cmd += ["--model-config", pair]
        result = _run(cmd, 420)
        summary_path = Path(tmp) / "lm" / "summary.json"
        summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    best = summary.get("best_val_loss")
    reached = best is not None and best <= target
    return {**result, "ok": result["ok"] and reached, "best_val_loss": best, "target": target}


def check(cpu: bool, skip=(), peak_tflops=None, target=None) -> dict:
    """Run every stage not in ``skip``: ``{stage: result}``, each with ``ok``."""
    runs = {
        "tests": lambda: stage_tests(cpu),
        "bench": lambda: stage_bench(cpu),
        "gpt": lambda: stage_gpt(cpu, peak_tflops),
        "train": lambda: stage_train(cpu, target),
    }
    report = {}
    for name in STAGES:
        if name in skip:
            continue
        t0 = time.perf_counter()
        report[name] = runs[name]()
        report[name]["stage_seconds"] = time.perf_counter() - t0
        print(f"device_check {name}: {json.dumps(report[name], default=str)}", flush=True)
    return report


def main(argv=None) -> int:
    """Run the check; exit 0 when every stage that ran is ok."""
    p = argparse.ArgumentParser(prog="python -m benchmarks.device_check", description=__doc__)
    p.add_argument("--cpu", action="store_true", help="the short CPU mode (CI).")
    p.add_argument("--skip", default="", help=f"stages to skip, comma-separated: {STAGES}")
    p.add_argument("--peak-tflops", type=float, default=None, help="the chip's peak for MFU.")
    p.add_argument("--target-loss", type=float, default=None, help="the LM run's target.")
    p.add_argument("--json", default="", help="also write the report here.")
    args = p.parse_args(argv)
    skip = tuple(s for s in args.skip.split(",") if s)
    unknown = sorted(set(skip) - set(STAGES))
    if unknown:
        raise SystemExit(f"--skip: expected stages among {', '.join(STAGES)}, got {unknown}")
    if args.cpu:
        os.environ["JAX_PLATFORMS"] = "cpu"  # before JAX starts, here and in the children
    report = check(args.cpu, skip, args.peak_tflops, args.target_loss)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2, default=str))
    failed = [name for name, r in report.items() if not r["ok"]]
    print("device_check: " + (f"FAILED {', '.join(failed)}" if failed else "all stages ok"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
