"""Worker for the checkpoint kill tests: saves checkpoints in a loop until it is killed.

Usage::

    python tests/_ckpt_worker.py DIRECTORY FIRST_STEP [--size N] [--die-at PHASE] [--steps K]

Saves :func:`make_state` ``(step)`` (a deterministic function of the step, shaped like a train
state: step, params, Adam state, RNG key data) at ``FIRST_STEP, FIRST_STEP + 1, ...``, printing
``saving N`` before and ``saved N`` after each save. ``--die-at`` makes the process SIGKILL itself
at a precise point of its second save: ``commit`` (every file written, before the atomic rename),
``fsync`` (just after the rename), ``retention`` (while removing an old checkpoint).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
from pathlib import Path

import numpy as np
import optax

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from jaxnn.train import checkpoint  # noqa: E402

KEEP_LAST, KEEP_BEST = 2, 1
PHASES = ("commit", "fsync", "retention")


def make_state(step: int, size: int = 256) -> dict:
    """A train-state-like pytree of NumPy arrays, a deterministic function of ``step``."""
    rng = np.random.default_rng(step)
    params = {
        "hidden": {
            "w": rng.standard_normal((size, 64), dtype=np.float32),  # (in, h)
            "b": rng.standard_normal((64,), dtype=np.float32),  # (h,)
        },
        "out": {
            "w": rng.standard_normal((64, 10), dtype=np.float32),  # (h, out)
            "b": rng.standard_normal((10,), dtype=np.float32),  # (out,)
        },
    }
    mu = {k: {n: 0.1 * a for n, a in layer.items()} for k, layer in params.items()}
    nu = {k: {n: a * a for n, a in layer.items()} for k, layer in params.items()}
    adam = optax.ScaleByAdamState(count=np.asarray(step, np.int32), mu=mu, nu=nu)
    return {
        "step": np.asarray(step, np.int32),
        "params": params,
        "opt_state": (adam, optax.EmptyState()),
        "rng": rng.integers(0, 2**32, size=(2,), dtype=np.uint32),  # key data
        "model_state": {},
    }


def make_extra(step: int, size: int = 256) -> dict:
    return {"step": step, "epoch": step // 3, "batch": step % 3, "config": {"size": size}}


def make_metrics(step: int) -> dict:
    """A validation accuracy that goes up and down with the step."""
    return {"val_accuracy": (step * 7 % 11) / 10, "val_loss": 1.0 / (1 + step)}


def _die():
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def _arm(phase: str, calls: dict) -> None:
    """Make the process kill itself at ``phase`` of its second save."""
    if phase == "commit":
        from orbax.checkpoint._src.path import async_path

        real_rename = async_path.rename

        async def rename(src, dst):
            if calls["saves"] >= 2:
                _die()
            return await real_rename(src, dst)

        async_path.rename = rename
    elif phase == "fsync":
        real_fsync_tree = checkpoint._fsync_tree

        def fsync_tree(root):
            if calls["saves"] >= 2:
                _die()
            return real_fsync_tree(root)

        checkpoint._fsync_tree = fsync_tree
    elif phase == "retention":
        real_rmtree = shutil.rmtree

        def rmtree(path, *args, **kwargs):
            if calls["saves"] >= 2 and checkpoint._DELETED in str(path):
                _die()
            return real_rmtree(path, *args, **kwargs)

        shutil.rmtree = rmtree


def main(argv=None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("directory")
    parser.add_argument("first_step", type=int)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--die-at", choices=PHASES)
    parser.add_argument("--steps", type=int, default=10_000)
    args = parser.parse_args(argv)
    calls = {"saves": 0}
    if args.die_at:
        _arm(args.die_at, calls)
    manager = checkpoint.CheckpointManager(args.directory, keep_last=KEEP_LAST, keep_best=KEEP_BEST)
    for step in range(args.first_step, args.first_step + args.steps):
        state = make_state(step, args.size)
        calls["saves"] += 1
        print(f"saving {step}", flush=True)
        manager.save(step, state, extra=make_extra(step, args.size), metrics=make_metrics(step))
        print(f"saved {step}", flush=True)
    manager.close()


if __name__ == "__main__":
    main()
