"""nanoGPT's own ``train.py`` and ``jaxnn train --recipe nanogpt-char``, side by side.

``python -m benchmarks.nanogpt --nanogpt PATH [--steps 2000] [--work DIR]`` runs, back to back on
this machine, nanoGPT's ``train.py`` from the checkout at ``PATH`` (its CPU configuration of the
character-level model: ``config/train_shakespeare_char.py`` with the overrides of its README,
4 layers, 4 heads, width 128, block 64, batch 12, no dropout, no compile) and jaxnn's recipe for
the same model, on the same text: the built-in ``pydoc_text``, its training range written in
nanoGPT's ``train.bin`` format with jaxnn's character vocabulary. Nothing is downloaded; nothing
is written outside ``--work`` (a fresh temporary directory by default), into which nanoGPT's
three files are copied so that it runs there.

Both models are scored by one protocol: the mean next-token cross-entropy over every
non-overlapping 64-token window of the validation range (jaxnn's ``val_loss``; nanoGPT's
checkpoint is loaded with its own ``model.py`` and scored on the same windows).

Speed: nanoGPT's per-iteration time is the median of the ``time`` its log prints (iteration 0,
which warms up, left out); jaxnn's is the difference of two runs, ``--max-steps N`` and
``--max-steps 20``, over ``N - 20`` steps, so that compile time and the evaluation cancel. The
ratio is nanoGPT's time over jaxnn's (above 1: jaxnn is faster).
"""

from __future__ import annotations

import argparse
import json
import pickle
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SEQ_LEN, BATCH = 64, 12
SHORT = 20  # the steps of the short jaxnn run whose time is subtracted
NANOGPT_FILES = ("train.py", "model.py", "configurator.py")
_ITER = re.compile(r"^iter (\d+): loss ([0-9.]+), time ([0-9.]+)ms")


def nanogpt_args(steps: int, out_dir: str) -> list[str]:
    """nanoGPT's CPU command line of its README for the character model, at ``steps``."""
    return [
        "config/train_shakespeare_char.py", "--dataset=pydoc_char", "--device=cpu",
        "--compile=False", "--dtype=float32", "--eval_iters=20", "--log_interval=1",
        f"--block_size={SEQ_LEN}", f"--batch_size={BATCH}", "--n_layer=4", "--n_head=4",
        "--n_embd=128", f"--max_iters={steps}", f"--lr_decay_iters={steps}", "--dropout=0.0",
        f"--eval_interval={steps}", "--always_save_checkpoint=True", f"--out_dir={out_dir}",
    ]  # fmt: skip


def write_nanogpt_data(work: Path) -> dict:
    """nanoGPT's ``data/pydoc_char/{train,val}.bin`` and ``meta.pkl``: the ranges and the
    character vocabulary of jaxnn's ``pydoc_text`` (ids as uint16). Returns the splits."""
    import numpy as np

    from jaxnn import data
    from jaxnn.data.datasets import pydoc_corpus

    splits = data.load("pydoc_text", seed=0, seq_len=SEQ_LEN)
    tok, text = splits.info.tokenizer, pydoc_corpus()
    a, b = int(len(text) * 0.8), int(len(text) * 0.9)  # text_splits' ranges
    folder = work / "data" / "pydoc_char"
    folder.mkdir(parents=True)
    for name, part in (("train", text[:a]), ("val", text[a:b])):
        np.asarray(tok.encode(part), np.uint16).tofile(folder / f"{name}.bin")
    itos = dict(enumerate(tok.decode([i]) for i in range(tok.vocab_size)))
    meta = {"vocab_size": tok.vocab_size, "itos": itos, "stoi": {c: i for i, c in itos.items()}}
    with open(folder / "meta.pkl", "wb") as f:
        pickle.dump(meta, f)
    return {"splits": splits}


def _copy_nanogpt(checkout: Path, work: Path) -> None:
    missing = [f for f in (*NANOGPT_FILES, "config/train_shakespeare_char.py")
               if not (checkout / f).is_file()]  # fmt: skip
    if missing:
        raise SystemExit(f"nanogpt: expected a nanoGPT checkout at {checkout}, missing {missing}")
    for name in NANOGPT_FILES:
        shutil.copyfile(checkout / name, work / name)
    (work / "config").mkdir()
    name = "config/train_shakespeare_char.py"
    shutil.copyfile(checkout / name, work / name)


def run_nanogpt(checkout: Path, work: Path, steps: int) -> dict:
    """Train with nanoGPT's ``train.py`` in ``work``; its iteration times and checkpoint."""
    _copy_nanogpt(checkout, work)
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "train.py", *nanogpt_args(steps, "out-nanogpt")],
        cwd=work, capture_output=True, text=True, check=False,
    )  # fmt: skip
    wall = time.perf_counter() - start
    if proc.returncode:
        raise SystemExit(f"nanogpt: train.py failed:\n{proc.stderr[-2000:]}")
    iters = [m.groups() for m in map(_ITER.match, proc.stdout.splitlines()) if m]
    times = [float(ms) for i, _, ms in iters if int(i) > 0]
    return {
        "wall_seconds": wall,
        "step_ms": statistics.median(times),
        "steps": len(iters),
        "checkpoint": work / "out-nanogpt" / "ckpt.pt",
    }


def score_nanogpt(work: Path, checkpoint: Path, splits) -> float:
    """Mean next-token cross-entropy of nanoGPT's checkpoint over jaxnn's validation windows."""
    import numpy as np
    import torch
    import torch.nn.functional as F

    sys.path.insert(0, str(work))
    try:
        from model import GPT, GPTConfig  # nanoGPT's model.py, copied into work
    finally:
        sys.path.pop(0)
    ckpt = torch.load(checkpoint, map_location="cpu", weights_only=False)
    gpt = GPT(GPTConfig(**ckpt["model_args"]))
    gpt.load_state_dict({k.removeprefix("_orig_mod."): v for k, v in ckpt["model"].items()})
    gpt.eval()
    val = splits.val.unseal() if hasattr(splits.val, "unseal") else splits.val
    x, y = np.asarray(val.x, np.int64), np.asarray(val.y, np.int64)
    total, count = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(x), 256):
            xb, yb = torch.from_numpy(x[i : i + 256]), torch.from_numpy(y[i : i + 256])
            logits, _ = gpt(xb, yb)  # with targets: logits at every position
            loss = F.cross_entropy(
                logits.reshape(-1, logits.shape[-1]), yb.reshape(-1), reduction="sum"
            )
            total, count = total + float(loss), count + yb.numel()
    return total / count


def run_jaxnn(work: Path, steps: int) -> dict:
    """``jaxnn train --recipe nanogpt-char`` at ``steps`` and at :data:`SHORT` steps."""
    result = {}
    for n in (steps, SHORT):
        out = work / f"jaxnn-{n}"
        cmd = [sys.executable, "-m", "jaxnn", "train", "--recipe", "nanogpt-char",
               "--max-steps", str(n), "--decay-steps", str(steps), "--out", str(out),
               "--no-progress", "--no-checkpoint"]  # fmt: skip
        if n < 100:  # the recipe warms up for 100 steps; the rate does not change a step's time
            cmd += ["--warmup-steps", str(n // 2)]
        start = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        wall = time.perf_counter() - start
        if proc.returncode:
            raise SystemExit(f"nanogpt: jaxnn train failed:\n{proc.stderr[-2000:]}")
        rows = [json.loads(r) for r in (out / "metrics.jsonl").read_text().splitlines()]
        result[n] = {"seconds": sum(r["seconds"] for r in rows), "val_loss": rows[-1]["val_loss"],
                     "wall_seconds": wall}  # fmt: skip
    step_ms = 1e3 * (result[steps]["seconds"] - result[SHORT]["seconds"]) / (steps - SHORT)
    return {"step_ms": step_ms, "val_loss": result[steps]["val_loss"],
            "wall_seconds": result[steps]["wall_seconds"]}  # fmt: skip


def main(argv=None) -> int:
    """Run both, print one JSON record and a two-row table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nanogpt", required=True, type=Path, help="a nanoGPT checkout")
    parser.add_argument("--steps", type=int, default=2000, help="training iterations (2000)")
    parser.add_argument("--work", type=Path, help="an empty directory to work in (default: temp)")
    parser.add_argument("--json", type=Path, help="also write the record here")
    args = parser.parse_args(argv)
    if args.steps <= SHORT:
        parser.error(f"--steps: expected more than {SHORT}, got {args.steps}")
    work = args.work or Path(tempfile.mkdtemp(prefix="jaxnn-nanogpt-"))
    work.mkdir(parents=True, exist_ok=True)
    if any(work.iterdir()):
        parser.error(f"--work: expected an empty directory, got {work} with files in it")
    made = write_nanogpt_data(work)
    theirs = run_nanogpt(args.nanogpt.resolve(), work, args.steps)
    theirs["val_loss"] = score_nanogpt(work, theirs.pop("checkpoint"), made["splits"])
    ours = run_jaxnn(work, args.steps)
    record = {"steps": args.steps, "nanogpt": theirs, "jaxnn": ours,
              "speed_ratio": theirs["step_ms"] / ours["step_ms"]}  # fmt: skip
    print(json.dumps(record, indent=1))
    print(f"{'':10} {'ms/step':>8} {'val loss':>9}")
    for name in ("nanogpt", "jaxnn"):
        print(f"{name:10} {record[name]['step_ms']:8.2f} {record[name]['val_loss']:9.4f}")
    print(f"jaxnn runs {record['speed_ratio']:.2f}x nanoGPT's speed per step")
    if args.json:
        args.json.write_text(json.dumps(record, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
