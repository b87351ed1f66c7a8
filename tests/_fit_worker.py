"""A small training run in its own process, for tests that need another device count or several
processes (XLA_FLAGS must be set before JAX starts). Writes the final params to --npz."""

import argparse
import sys

import numpy as np

parser = argparse.ArgumentParser()
parser.add_argument("--npz", required=True)
parser.add_argument("--devices", type=int, default=0)
parser.add_argument("--mesh", default="")
parser.add_argument("--scan", action="store_true")
parser.add_argument("--epochs", type=int, default=2)
parser.add_argument("--coordinator", default="")
parser.add_argument("--num-processes", type=int, default=1)
parser.add_argument("--process-id", type=int, default=0)
parser.add_argument("--dataset", default="digits")
args = parser.parse_args()

if args.num_processes > 1:
    from jaxnn import parallel

    parallel.initialize_distributed(args.coordinator, args.num_processes, args.process_id)

import jax  # noqa: E402

from jaxnn import data, models  # noqa: E402
from jaxnn.data import pipeline  # noqa: E402
from jaxnn.train import FitConfig, fit  # noqa: E402

raw = data.load(args.dataset, seed=0)
train_rows_read = [0]  # rows of the training split this process reads (a pack's rows only)
if hasattr(raw.train.x, "_gather"):
    gather = raw.train.x._gather

    def counted(idx):
        train_rows_read[0] += len(idx)
        return gather(idx)

    raw.train.x._gather = counted
splits, _ = pipeline.standardize(raw)
model = models.get("mlp")
net = models.build("mlp", model.config_for(splits.info, hidden=(32,)))
cfg = FitConfig(
    epochs=args.epochs,
    batch_size=64,
    lr=3e-3,
    devices=args.devices,
    mesh=args.mesh,
    scan=args.scan,
    progress=False,
    eval_batch_size=256,
)
result = fit(net, splits, cfg, verbose=False)
split = sum(bool(getattr(x.sharding, "spec", ())) for x in jax.tree.leaves(result.state.params))
if jax.process_index() == 0:
    from jaxnn.parallel import to_host

    leaves = jax.tree.leaves(to_host(result.state.params))
    np.savez(
        args.npz,
        *leaves,
        val_accuracy=result.history[-1]["val_accuracy"],
        devices=jax.device_count(),
        processes=jax.process_count(),
        split_leaves=split,
        train_rows_read=train_rows_read[0],
    )
print("done", jax.process_index(), file=sys.stderr)
