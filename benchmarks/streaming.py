"""Training on a dataset larger than memory: peak anonymous memory, and the input pipeline's share.

It writes a pack (:mod:`jaxnn.data.streaming`) of ``--gb`` gigabytes of generated 32x32x1
float32 images in ten classes (each a class prototype plus noise, so the models learn), with
:class:`~jaxnn.data.streaming.PackWriter`, chunk by chunk: the generator never holds it. Then:

1. **Memory**: for each model, ``jaxnn train --dataset PACK --max-steps S`` in a subprocess, its
   ``RssAnon`` (``/proc/PID/status``: the process's own heap and arrays; pages of the memory-
   mapped shards are file pages, ``RssFile``, which the kernel reclaims) sampled every 20 ms from
   start to exit; the peak is the figure. It covers the streaming statistics pass over the whole
   training split, the steps, validation, and the test score.
2. **Input share**: in this process, the loop's jitted step on ``S`` batches already on the
   device (``step ms``, no input work) against the same step fed as ``fit`` feeds a pack
   (``fed ms``: rows gathered from the shards by the epoch's permutation, standardized as
   read, handed to the call), in interleaved rounds after a warm-up, medians; the input share is
   ``(fed - step) / step``, as :mod:`benchmarks.input_pipeline` defines it.

Usage::

    python -m benchmarks.streaming --dir /tmp/jaxnn-stream [--gb 4.2] [--models mlp,cnn]
        [--steps 300] [--rounds 5] [--json out.json]

``--dir`` is made if missing; the pack stays there for a rerun (``--keep``), else it is
removed at the end. Nothing is timed by a test; ``tests/test_bench_streaming.py`` runs a
small size to keep the script working.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

SHAPE = (32, 32, 1)
CLASSES = 10


def write_pack(out: Path, gb: float, *, seed: int = 0, chunk: int = 8192) -> dict:
    """A pack of about ``gb`` GB of training images (plus 4096 validation and 4096 test)."""
    from jaxnn.data.containers import DatasetInfo
    from jaxnn.data.streaming import PackWriter

    rng = np.random.default_rng(seed)
    protos = rng.normal(size=(CLASSES, *SHAPE)).astype(np.float32)  # (10, 32, 32, 1)
    row = int(np.prod(SHAPE)) * 4
    rows = max(chunk, int(gb * 1e9) // row)
    writer = PackWriter(out)
    t = time.perf_counter()
    for part, n in (("train", rows), ("val", 4096), ("test", 4096)):
        for lo in range(0, n, chunk):
            k = min(chunk, n - lo)
            y = rng.integers(0, CLASSES, size=k)
            x = protos[y] + rng.standard_normal(size=(k, *SHAPE), dtype=np.float32) * 2.0
            writer.add(part, x, y.astype(np.int32))
    info = DatasetInfo(name="generated", task="classification", input_shape=SHAPE,
                       num_classes=CLASSES, modality="image",
                       description="class prototypes plus noise")  # fmt: skip
    writer.close(info)
    return {"train_rows": rows, "train_bytes": rows * row, "write_s": time.perf_counter() - t}


def _status(pid: int) -> dict:
    fields = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("RssAnon", "RssFile", "VmRSS"):
                fields[key] = int(value.split()[0]) * 1024
    return fields


def peak_memory(cmd, *, env=None, every: float = 0.02) -> dict:
    """Run ``cmd``; its peak ``RssAnon``, ``RssFile`` and ``VmRSS`` in bytes, sampled every
    ``every`` seconds, with its exit code, wall time and the last lines it printed."""
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)  # fmt: skip
    peaks = {"RssAnon": 0, "RssFile": 0, "VmRSS": 0}
    done = threading.Event()

    def sample():
        while not done.is_set():
            try:
                for k, v in _status(proc.pid).items():
                    peaks[k] = max(peaks[k], v)
            except (FileNotFoundError, ProcessLookupError, ValueError):
                return
            time.sleep(every)

    sampler = threading.Thread(target=sample, daemon=True)
    t = time.perf_counter()
    sampler.start()
    out, _ = proc.communicate()
    done.set()
    sampler.join()
    return {"rc": proc.returncode, "wall_s": time.perf_counter() - t,
            "peak": peaks, "tail": out.strip().splitlines()[-3:]}  # fmt: skip


def train_memory(pack: Path, model: str, steps: int, batch: int, run_dir: Path) -> dict:
    cmd = [sys.executable, "-m", "jaxnn", "train", "--dataset", str(pack), "--model", model,
           "--max-steps", str(steps), "--batch-size", str(batch), "--out", str(run_dir),
           "--no-progress", "--overwrite"]  # fmt: skip
    return peak_memory(cmd, env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])})


def input_share(pack: Path, model_name: str, steps: int, batch: int, rounds: int) -> dict:
    """The loop's step fed from the pack against the same step on batches already on device."""
    import jax

    from jaxnn import data, models, optim
    from jaxnn._xla import jit
    from jaxnn.data import pipeline
    from jaxnn.train import loop
    from jaxnn.train.state import create_train_state
    from jaxnn.train.step import make_train_step

    splits, _ = pipeline.standardize(data.load(str(pack), seed=0))
    module = models.get(model_name)
    model = models.build(model_name, module.config_for(splits.info))
    tx, _ = optim.make_optimizer("adam", 1e-3)
    step = jit(make_train_step(model, tx, jitted=False), workload=model_name, donate_argnums=0)
    train = splits.train
    plans = [pipeline.epoch_plan(len(train), batch, seed=0, epoch=e).full[:steps]
             for e in range(rounds + 1)]  # fmt: skip
    on_device = jax.block_until_ready(
        jax.device_put([loop._host_batch(train, idx, None) for idx in plans[0]])
    )
    box = {"state": create_train_state(model, tx, 0)}

    def epoch(inputs):
        t = time.perf_counter()
        state = box["state"]
        for args in inputs:
            state, _ = step(state, *args)
        box["state"] = jax.block_until_ready(state)
        return 1e3 * (time.perf_counter() - t) / steps

    t = time.perf_counter()
    epoch(on_device[:1] * steps)
    compile_s = time.perf_counter() - t
    epoch(loop._host_batch(train, idx, None) for idx in plans[0])  # warm-up of the fed path
    fed, still = [], []
    for r in range(1, rounds + 1):
        fed.append(epoch(loop._host_batch(train, idx, None) for idx in plans[r]))
        still.append(epoch(on_device))
    f, s = statistics.median(fed), statistics.median(still)
    return {"model": model_name, "batch": batch, "step_ms": s, "fed_ms": f,
            "input_share": (f - s) / s, "compile_s": compile_s}  # fmt: skip


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", required=True, help="where the pack and runs are written")
    parser.add_argument("--gb", type=float, default=4.2, help="gigabytes of training examples")
    parser.add_argument("--models", default="mlp,cnn")
    parser.add_argument("--steps", type=int, default=300, help="steps of each training run")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--keep", action="store_true", help="keep the pack for a rerun")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    root = Path(args.dir).expanduser()
    pack = root / "pack"
    report: dict = {"gb": args.gb, "batch": args.batch_size, "steps": args.steps}
    if (pack / "jaxnn-pack.json").exists():
        print(f"reusing the pack at {pack}")
    else:
        report["pack"] = write_pack(pack, args.gb)
        print(f"wrote {report['pack']['train_bytes'] / 1e9:.2f} GB of training examples "
              f"({report['pack']['train_rows']} rows) in "
              f"{report['pack']['write_s']:.0f} s")  # fmt: skip
    report["runs"], report["input"] = {}, {}
    for name in args.models.split(","):
        run = train_memory(pack, name, args.steps, args.batch_size, root / f"run-{name}")
        report["runs"][name] = run
        peak = run["peak"]
        print(f"{name}: jaxnn train rc {run['rc']} in {run['wall_s']:.1f} s, peak RssAnon "
              f"{peak['RssAnon'] / 2**20:.0f} MiB, RssFile "
              f"{peak['RssFile'] / 2**20:.0f} MiB")  # fmt: skip
        if run["rc"]:
            print("\n".join(run["tail"]))
    for name in args.models.split(","):
        r = input_share(pack, name, min(args.steps, 200), args.batch_size, args.rounds)
        report["input"][name] = r
        print(f"{name}: step {r['step_ms']:.3f} ms on device, {r['fed_ms']:.3f} ms fed from "
              f"the pack: input share {r['input_share']:.1%}")  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    if not args.keep:
        shutil.rmtree(pack)
    return report


if __name__ == "__main__":
    main()
