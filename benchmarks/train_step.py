"""Step time of the Python training loop vs ``--scan`` (one compiled ``lax.scan`` per epoch).

Both run through ``jaxnn.train.fit`` on the same data and model, alternating (loop, scan, loop,
scan) so that drift on a shared machine hits both. Per run: the first epoch holds the compile time,
the median of the other epochs gives the steady step time. Usage:

    python -m benchmarks.train_step [--model mlp] [--dataset mnist1d] [--epochs 6] [--rounds 2]

"""

from __future__ import annotations

import argparse
import json
import statistics

import jax

from jaxnn import data, models
from jaxnn.data import pipeline
from jaxnn.train import FitConfig, fit


def run_once(model, splits, scan: bool, epochs: int, batch_size: int) -> dict:
    cfg = FitConfig(epochs=epochs, batch_size=batch_size, scan=scan, progress=False)
    result = fit(model, splits, cfg, verbose=False)
    steps = result.history[0]["step"]
    seconds = [r["seconds"] for r in result.history]
    steady = statistics.median(seconds[1:])
    return {
        "step_ms": 1e3 * steady / steps,
        "compile_s": seconds[0] - steady,
        "steps_per_epoch": steps,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="mlp")
    parser.add_argument("--dataset", default="mnist1d")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=128)
    args = parser.parse_args()
    splits, _ = pipeline.standardize(data.load(args.dataset, seed=0))
    module = models.get(args.model)
    model = models.build(args.model, module.config_for(splits.info))
    runs = {"loop": [], "scan": []}
    for _ in range(args.rounds):
        for mode in ("loop", "scan"):
            runs[mode].append(run_once(model, splits, mode == "scan", args.epochs, args.batch_size))
    report = {
        "backend": jax.default_backend(),
        "device": str(jax.devices()[0]),
        "model": args.model,
        "dataset": args.dataset,
        "batch_size": args.batch_size,
    }
    print(f"{'mode':<6}{'step ms (median)':>18}{'compile s':>12}")
    for mode, rows in runs.items():
        step = statistics.median(r["step_ms"] for r in rows)
        comp = statistics.median(r["compile_s"] for r in rows)
        report[mode] = {"step_ms": step, "compile_s": comp, "runs": rows}
        print(f"{mode:<6}{step:>18.3f}{comp:>12.2f}")
    report["loop_over_scan"] = report["loop"]["step_ms"] / report["scan"]["step_ms"]
    print(f"loop / scan step-time ratio: {report['loop_over_scan']:.2f}")
    print(json.dumps(report))


if __name__ == "__main__":
    main()
