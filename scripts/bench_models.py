"""Step time of the MLP, CNN and Transformer in jaxnn and in PyTorch eager (Chapters 10-12).

Three workloads with the library defaults:

* ``mlp``: :mod:`jaxnn.models.mlp` on standardized MNIST-1D, batch 128 (Chapter 10);
* ``cnn``: :mod:`jaxnn.models.cnn` on standardized MNIST-1D, batch 128 (Chapter 11);
* ``transformer``: the causal character language model of :mod:`jaxnn.models.transformer` on
  ``pydoc_text`` windows of 128 characters, batch 32 (Chapter 12).

The jaxnn side runs the training step the loop runs: ``make_train_step(model, tx, task=...)``
(compiled, state donated, the model's CPU compiler options) with ``make_optimizer("adam", 1e-3)``.
The PyTorch side runs an eager ``torch.nn.Module`` twin of each model (same layers, sizes, pooling,
activations, dropout, norm placement, positional encoding, heads and causal mask; the parameter
counts are asserted equal) with ``torch.optim.Adam(lr=1e-3)``: ``zero_grad``, forward, cross-
entropy, ``backward``, ``step``.
Both sides cycle through the same few training batches, already on the device.

The jaxnn step also computes the loop's metrics (accuracy, gradient and update norms) and its
non-finite guard; the PyTorch step computes the loss only.

Timing: the jaxnn compile time (first call, waited for) is reported apart. After ``--warmup``
steps on each side, ``--repeats`` timings of ``--steps`` steps each alternate between jaxnn and
PyTorch (so drift on a shared machine hits both), each waited for at its end; the table gives
the median time per step. Ratios compare rows from the same run only.

Usage::

    python scripts/bench_models.py [--repeats 7] [--steps 20] [--workloads mlp,cnn,transformer]
        [--quick] [--json out.json]

Needs PyTorch (the ``bench`` extra); the PyTorch side uses CUDA when it is available.

Measured on a 2-core CPU (jax 0.10.2, torch 2.13.0, 2 threads each), two runs of the defaults,
median ms per step: MLP 0.17 / 0.24 (torch 0.26 / 0.53), CNN 1.12 / 1.22 (torch 2.36 / 2.55),
Transformer 115.9 / 115.9 (torch 81.7 / 87.1): jaxnn is about 2x faster on the CNN and PyTorch
about 1.3-1.4x faster on the Transformer. Most of the Transformer's FLOPs are in its dense
layers (B T = 4096 rows); swapping in the tanh GELU or ``jax.nn.dot_product_attention`` left the
jaxnn step time unchanged.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import platform
import statistics
import time
from collections.abc import Callable

os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")  # share a GPU with PyTorch

import jax
import numpy as np

from jaxnn import data, models
from jaxnn.data import pipeline
from jaxnn.optim import make_optimizer
from jaxnn.train.state import create_train_state
from jaxnn.train.step import make_train_step

try:
    import torch
    import torch.nn.functional as F
    from torch import nn
except ImportError as err:  # pragma: no cover - depends on the environment
    raise SystemExit(
        "bench_models.py needs PyTorch: pip install 'jaxnn[bench]' (or pip install torch)"
    ) from err

__all__ = [
    "WORKLOADS",
    "Workload",
    "TorchMLP",
    "TorchCNN",
    "TorchTransformer",
    "build_torch_twin",
    "copy_jaxnn_params",
    "torch_param_count",
    "load_workload",
    "main",
]

WORKLOADS = ("mlp", "cnn", "transformer")
DATASETS = {"mlp": "mnist1d", "cnn": "mnist1d", "transformer": "pydoc_text"}
BATCH_SIZES = {"mlp": 128, "cnn": 128, "transformer": 32}
SEQ_LEN = 128  # the pydoc_text default window
NUM_BATCHES = 4  # distinct training batches each side cycles through
LEARNING_RATE = 1e-3


# ---------------------------------------------------------------------------------------------
# PyTorch twins. Each takes the jaxnn Config and builds the same network; copy_jaxnn_params loads
# a jaxnn params dict into it, so the tests can check that the twin computes the same function.
# ---------------------------------------------------------------------------------------------


class TorchMLP(nn.Module):
    """Twin of :mod:`jaxnn.models.mlp`: flatten, ``(Linear, act, Dropout)`` per hidden layer,
    then a Linear output layer."""

    def __init__(self, cfg):
        super().__init__()
        acts = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "gelu": nn.GELU}
        if cfg.activation not in acts:
            raise ValueError(
                f"TorchMLP: expected activation in {sorted(acts)}, got {cfg.activation!r}"
            )
        layers: list[nn.Module] = [nn.Flatten()]
        sizes = cfg.sizes
        for n_in, n_out in zip(sizes[:-2], sizes[1:-1], strict=True):
            layers += [nn.Linear(n_in, n_out), acts[cfg.activation](), nn.Dropout(cfg.dropout)]
        layers.append(nn.Linear(sizes[-2], sizes[-1]))
        self.net = nn.Sequential(*layers)

    def forward(self, x):  # (B, ...) -> (B, num_classes)
        return self.net(x)

    def dense_layers(self) -> list[nn.Linear]:
        """The Linear layers in the order of jaxnn's ``dense_0, dense_1, ...``."""
        return [m for m in self.net if isinstance(m, nn.Linear)]


class TorchCNN(nn.Module):
    """Twin of :mod:`jaxnn.models.cnn`: ``[conv, (BatchNorm), ReLU, (MaxPool)]`` blocks, then the
    dense head ``Linear, ReLU, Dropout, Linear``.

    Convolutions use "same" padding, stride 1; the feature map is flattened channels-last, as
    jaxnn flattens its NHWC / (B, L, C) maps, so copied weights give the same logits. With
    ``batch_norm`` one detail differs at the same cost: PyTorch's running variance averages the
    unbiased batch variance, jaxnn's the biased one (batch norm is off in the default CNN).
    """

    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        conv = nn.Conv1d if cfg.ndim == 1 else nn.Conv2d
        pool = nn.MaxPool1d if cfg.ndim == 1 else nn.MaxPool2d
        norm = nn.BatchNorm1d if cfg.ndim == 1 else nn.BatchNorm2d
        blocks: list[nn.Module] = []
        c_in = cfg.in_channels
        for c_out, pooled in zip(cfg.channels, cfg.pooled_after(), strict=True):
            blocks.append(conv(c_in, c_out, cfg.kernel_size, padding="same"))
            if cfg.batch_norm:  # jaxnn keeps (1 - momentum) of the new batch statistics
                blocks.append(norm(c_out, eps=1e-5, momentum=1.0 - cfg.bn_momentum))
            blocks.append(nn.ReLU())
            if pooled:
                blocks.append(pool(cfg.pool))
            c_in = c_out
        self.features = nn.Sequential(*blocks)
        self.fc = nn.Linear(math.prod(cfg.feature_shape), cfg.hidden)
        self.drop = nn.Dropout(cfg.dropout)
        self.out = nn.Linear(cfg.hidden, cfg.num_classes)

    def forward(self, x):  # (B, *input_shape) -> (B, num_classes)
        cfg = self.cfg
        h = x.reshape(x.shape[0], *cfg.input_shape[: cfg.ndim], cfg.in_channels)  # (B, *S, C)
        h = self.features(h.movedim(-1, 1))  # (B, C, *S')
        h = h.movedim(1, -1).flatten(1)  # (B, prod(S') * C), channels-last like jaxnn
        return self.out(self.drop(F.relu(self.fc(h))))


def _sinusoidal_table(length: int, dim: int, dtype=torch.float32) -> torch.Tensor:
    """``PE[p, 2i] = sin(p / 10000^(2i/D))``, ``PE[p, 2i+1] = cos(...)``, interleaved as jaxnn."""
    half = (dim + 1) // 2
    freqs = 1.0 / (10000.0 ** (2.0 * np.arange(half) / dim))  # (D/2,)
    angles = np.arange(length)[:, None] * freqs[None, :]  # (T, D/2)
    table = np.stack([np.sin(angles), np.cos(angles)], axis=-1).reshape(length, 2 * half)
    return torch.tensor(table[:, :dim], dtype=dtype)  # (T, D), rounded once from float64


class _Attention(nn.Module):
    """Multi-head self-attention with separate q, k, v, out projections (as jaxnn's)."""

    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.q, self.k, self.v, self.out = (nn.Linear(dim, dim) for _ in range(4))

    def forward(self, x, is_causal: bool):  # (B, T, D) -> (B, T, D)
        b, t, d = x.shape
        split = lambda a: a.view(b, t, self.num_heads, d // self.num_heads).transpose(1, 2)
        q, k, v = split(self.q(x)), split(self.k(x)), split(self.v(x))  # (B, H, T, Dh)
        heads = F.scaled_dot_product_attention(q, k, v, is_causal=is_causal)  # (B, H, T, Dh)
        return self.out(heads.transpose(1, 2).reshape(b, t, d))


class _Block(nn.Module):
    """Pre-norm block: ``x + Drop(MHA(LN(x)))``, then ``x + Drop(W2 GELU(W1 LN(x)))``."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: int, dropout: float):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(dim, eps=1e-5), nn.LayerNorm(dim, eps=1e-5)
        self.attn = _Attention(dim, num_heads)
        self.fc, self.proj = nn.Linear(dim, mlp_ratio * dim), nn.Linear(mlp_ratio * dim, dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, x, is_causal: bool):  # (B, T, D) -> (B, T, D)
        x = x + self.drop(self.attn(self.ln1(x), is_causal))
        return x + self.drop(self.proj(F.gelu(self.fc(self.ln2(x)))))  # exact (erf) GELU


class TorchTransformer(nn.Module):
    """Twin of :mod:`jaxnn.models.transformer`: embedding plus positions, dropout, pre-norm
    blocks (causal for ``task="lm"``), final LayerNorm, a Linear head (mean over time first for
    ``task="classify"``)."""

    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.dim)
        if cfg.positional == "learned":
            self.pos = nn.Parameter(torch.randn(cfg.max_len, cfg.dim))
        elif cfg.positional == "sinusoidal":
            self.register_buffer("pos_table", _sinusoidal_table(cfg.max_len, cfg.dim))
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(
            _Block(cfg.dim, cfg.num_heads, cfg.mlp_ratio, cfg.dropout)
            for _ in range(cfg.num_layers)
        )
        self.ln_f = nn.LayerNorm(cfg.dim, eps=1e-5)
        self.head = nn.Linear(cfg.dim, cfg.out_dim)

    def forward(self, ids):  # (B, T) -> (B, T, V) or (B, C)
        t = ids.shape[1]
        h = self.embed(ids)  # (B, T, D)
        if self.cfg.positional == "learned":
            h = h + self.pos[:t]
        elif self.cfg.positional == "sinusoidal":
            h = h + self.pos_table[:t]
        h = self.drop(h)
        for block in self.blocks:
            h = block(h, is_causal=self.cfg.task == "lm")
        h = self.ln_f(h)
        if self.cfg.task == "classify":
            h = h.mean(dim=1)  # (B, D)
        return self.head(h)


_TWINS = {"mlp": TorchMLP, "cnn": TorchCNN, "transformer": TorchTransformer}


def build_torch_twin(model: models.Model) -> nn.Module:
    """The PyTorch twin of a :class:`jaxnn.models.Model` built by ``models.build``."""
    if model.name not in _TWINS:
        raise ValueError(
            f"build_torch_twin: expected a model in {sorted(_TWINS)}, got {model.name!r}"
        )
    return _TWINS[model.name](model.cfg)


def torch_param_count(module: nn.Module) -> int:
    """Number of trainable scalars of a PyTorch module (buffers such as running stats excluded)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def _assign(param: torch.Tensor, value) -> None:
    value = torch.as_tensor(np.array(value), dtype=param.dtype)
    if tuple(value.shape) != tuple(param.shape):
        raise ValueError(
            f"copy_jaxnn_params: expected shape {tuple(param.shape)}, got {tuple(value.shape)}"
        )
    with torch.no_grad():
        param.copy_(value)


def _assign_linear(linear: nn.Linear, p: dict) -> None:
    _assign(linear.weight, np.asarray(p["w"]).T)  # jaxnn (in, out) -> torch (out, in)
    _assign(linear.bias, p["b"])


def _assign_norm(norm: nn.Module, p: dict) -> None:
    _assign(norm.weight, p["scale"])
    _assign(norm.bias, p["bias"])


def copy_jaxnn_params(twin: nn.Module, params: dict) -> nn.Module:
    """Load a jaxnn params dict into its twin (in place), converting layouts.

    Dense ``w (in, out)`` becomes ``weight (out, in)``; convolution kernels ``HWIO`` / ``(k, I,
    O)`` become ``OIHW`` / ``(O, I, k)``; norms' ``scale, bias`` become ``weight, bias``. The
    sinusoidal table is recomputed in the twin's dtype (call this after ``.double()``).

    Returns:
      ``twin``.
    """
    if isinstance(twin, TorchMLP):
        for i, linear in enumerate(twin.dense_layers()):
            _assign_linear(linear, params[f"dense_{i}"])
    elif isinstance(twin, TorchCNN):
        convs = [m for m in twin.features if isinstance(m, nn.Conv1d | nn.Conv2d)]
        norms = [m for m in twin.features if isinstance(m, nn.BatchNorm1d | nn.BatchNorm2d)]
        for i, conv in enumerate(convs):
            w = np.asarray(params[f"conv_{i}"]["w"])  # (*K, I, O)
            _assign(conv.weight, np.moveaxis(w, (-1, -2), (0, 1)))  # (O, I, *K)
            _assign(conv.bias, params[f"conv_{i}"]["b"])
        for i, norm in enumerate(norms):
            _assign_norm(norm, params[f"bn_{i}"])
        _assign_linear(twin.fc, params["dense_0"])
        _assign_linear(twin.out, params["dense_1"])
    elif isinstance(twin, TorchTransformer):
        _assign(twin.embed.weight, params["embed"]["table"])
        if hasattr(twin, "pos_table"):  # recomputed in the twin's dtype, as jaxnn does per call
            twin.pos_table = _sinusoidal_table(*twin.pos_table.shape, twin.embed.weight.dtype).to(
                twin.pos_table.device
            )
        if "pos" in params:
            _assign(twin.pos, params["pos"]["table"])
        for i, block in enumerate(twin.blocks):
            p = params[f"block_{i}"]
            _assign_norm(block.ln1, p["ln1"])
            _assign_norm(block.ln2, p["ln2"])
            for name in ("q", "k", "v", "out"):
                _assign_linear(getattr(block.attn, name), p["attn"][name])
            _assign_linear(block.fc, p["mlp"]["fc"])
            _assign_linear(block.proj, p["mlp"]["proj"])
        _assign_norm(twin.ln_f, params["ln_f"])
        _assign_linear(twin.head, params["head"])
    else:
        raise ValueError(f"copy_jaxnn_params: expected a jaxnn twin, got {type(twin).__name__}")
    return twin


# ---------------------------------------------------------------------------------------------
# Workloads and timing.
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Workload:
    """A model with its training task and a few fixed training batches (NumPy)."""

    name: str
    model: models.Model
    task: str
    batches: tuple  # ((x (B, ...), y (B, ...)), ...)


def load_workload(name: str, *, num_batches: int = NUM_BATCHES) -> Workload:
    """Build workload ``name`` from :data:`WORKLOADS` with the library's default config."""
    if name not in WORKLOADS:
        raise ValueError(f"load_workload: expected one of {WORKLOADS}, got {name!r}")
    options = {"seq_len": SEQ_LEN} if DATASETS[name] == "pydoc_text" else {}
    splits, _ = pipeline.standardize(data.load(DATASETS[name], seed=0, **options))
    cfg = models.get(name).config_for(splits.info)
    batch = BATCH_SIZES[name]
    if len(splits.train.x) < num_batches * batch:
        raise ValueError(
            f"load_workload: expected at least {num_batches * batch} training examples, got "
            f"{len(splits.train.x)}"
        )
    batches = tuple(
        (splits.train.x[i * batch : (i + 1) * batch], splits.train.y[i * batch : (i + 1) * batch])
        for i in range(num_batches)
    )
    return Workload(name, models.build(name, cfg), splits.info.task, batches)


def jaxnn_param_count(model: models.Model) -> int:
    """Trainable scalars of a jaxnn model (its module's ``param_count``)."""
    shapes, _ = jax.eval_shape(model.init, jax.random.PRNGKey(0))  # no arrays made
    return models.get(model.name).param_count(shapes)


def make_jaxnn_runner(work: Workload, *, seed: int = 0):
    """Return ``(run, compile_s, last_loss)``: ``run(k)`` does ``k`` jitted train steps, waited."""
    tx, _ = make_optimizer("adam", LEARNING_RATE)
    # compiled and state-donating, with the model's own CPU compiler options, as fit compiles it
    step = make_train_step(work.model, tx, task=work.task)
    state = create_train_state(work.model, tx, seed)
    device_batches = [jax.device_put(b) for b in work.batches]
    box = {"state": state, "metrics": None, "i": 0}

    def run(k: int) -> None:
        for _ in range(k):
            x, y = device_batches[box["i"] % len(device_batches)]
            box["state"], box["metrics"] = step(box["state"], x, y)
            box["i"] += 1
        jax.block_until_ready((box["state"], box["metrics"]))

    start = time.perf_counter()
    run(1)  # compile and one step
    compile_s = time.perf_counter() - start
    return run, compile_s, lambda: float(box["metrics"]["loss"])


def make_torch_runner(work: Workload, device: torch.device, *, seed: int = 0):
    """Return ``(run, twin, last_loss)``: ``run(k)`` does ``k`` eager Adam steps, synchronized."""
    torch.manual_seed(seed)
    twin = build_torch_twin(work.model).to(device).train()
    opt = torch.optim.Adam(twin.parameters(), lr=LEARNING_RATE)
    lm = work.task == "language_model"
    batches = [
        (
            torch.as_tensor(np.asarray(x)).to(device, torch.long if lm else torch.float32),
            torch.as_tensor(np.asarray(y), dtype=torch.long).to(device),
        )
        for x, y in work.batches
    ]
    box = {"loss": None, "i": 0}

    def run(k: int) -> None:
        for _ in range(k):
            x, y = batches[box["i"] % len(batches)]
            opt.zero_grad(set_to_none=True)
            logits = twin(x)  # (B, C) or (B, T, V)
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
            loss.backward()
            opt.step()
            box["loss"] = loss
            box["i"] += 1
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    return run, twin, lambda: float(box["loss"].detach())


def _time_interleaved(runners: dict[str, Callable], *, warmup: int, repeats: int, steps: int):
    """Median and all per-step times (ms) of each runner; repeats alternate between runners."""
    for run in runners.values():
        run(warmup)
    times = {name: [] for name in runners}
    for _ in range(repeats):
        for name, run in runners.items():
            start = time.perf_counter()
            run(steps)
            times[name].append(1e3 * (time.perf_counter() - start) / steps)
    return {name: (statistics.median(t), t) for name, t in times.items()}


def bench_workload(name: str, device, *, warmup: int, repeats: int, steps: int) -> dict:
    """Time one workload on both sides; asserts the twin's parameter count equals jaxnn's."""
    work = load_workload(name)
    n_jax = jaxnn_param_count(work.model)
    jax_run, compile_s, jax_loss = make_jaxnn_runner(work)
    torch_run, twin, torch_loss = make_torch_runner(work, device)
    n_torch = torch_param_count(twin)
    if n_torch != n_jax:
        raise AssertionError(f"{name}: PyTorch twin has {n_torch} parameters, jaxnn {n_jax}")
    timed = _time_interleaved(
        {"jaxnn": jax_run, "torch": torch_run}, warmup=warmup, repeats=repeats, steps=steps
    )
    (jax_ms, jax_all), (torch_ms, torch_all) = timed["jaxnn"], timed["torch"]
    x0 = work.batches[0][0]
    return {
        "workload": name,
        "dataset": DATASETS[name],
        "batch_shape": list(np.shape(x0)),
        "config": dataclasses.asdict(work.model.cfg),
        "params": n_jax,
        "jaxnn_step_ms": jax_ms,
        "jaxnn_compile_s": compile_s,
        "torch_step_ms": torch_ms,
        "torch_over_jaxnn": torch_ms / jax_ms,
        "jaxnn_step_ms_repeats": jax_all,
        "torch_step_ms_repeats": torch_all,
        "jaxnn_final_loss": jax_loss(),
        "torch_final_loss": torch_loss(),
    }


def _environment(device) -> dict:
    return {
        "jax": jax.__version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "jax_backend": jax.default_backend(),
        "jax_device": str(jax.devices()[0]),
        "torch_device": str(device),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
    }


def _table(rows: list[dict]) -> str:
    mlp_ms = next((r["jaxnn_step_ms"] for r in rows if r["workload"] == "mlp"), None)
    header = (
        f"{'workload':<12}{'params':>9}{'jaxnn ms/step':>15}{'jaxnn compile s':>17}"
        f"{'torch ms/step':>15}{'torch/jaxnn':>13}{'jaxnn / jaxnn mlp':>19}"
    )
    lines = [header, "-" * len(header)]
    for r in rows:
        rel = f"{r['jaxnn_step_ms'] / mlp_ms:.2f}" if mlp_ms else "-"
        lines.append(
            f"{r['workload']:<12}{r['params']:>9}{r['jaxnn_step_ms']:>15.3f}"
            f"{r['jaxnn_compile_s']:>17.2f}{r['torch_step_ms']:>15.3f}"
            f"{r['torch_over_jaxnn']:>13.2f}{rel:>19}"
        )
    return "\n".join(lines)


def _parse(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7, help="timed repeats per side (>= 7)")
    parser.add_argument("--steps", type=int, default=20, help="train steps per timed repeat")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps after compiling")
    parser.add_argument("--workloads", default=",".join(WORKLOADS), help="comma-separated")
    parser.add_argument("--quick", action="store_true", help="3 repeats of 2 steps, 1 warm-up")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    args = parser.parse_args(argv)
    if args.quick:
        args.repeats, args.steps, args.warmup = 3, 2, 1
    names = [w.strip() for w in args.workloads.split(",") if w.strip()]
    bad = [w for w in names if w not in WORKLOADS]
    if bad or not names:
        parser.error(
            f"--workloads: expected names from {','.join(WORKLOADS)}, got {args.workloads}"
        )
    for flag in ("repeats", "steps"):
        if getattr(args, flag) < 1:
            parser.error(f"--{flag}: expected a positive integer, got {getattr(args, flag)}")
    if args.warmup < 0:
        parser.error(f"--warmup: expected a non-negative integer, got {args.warmup}")
    return args, names


def main(argv=None) -> dict:
    """Run the benchmark, print the table and return the report (also written by ``--json``)."""
    args, names = _parse(argv)
    torch.set_num_threads(os.cpu_count() or 1)  # as many threads as XLA's CPU client uses
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    env = _environment(device)
    print(
        f"jax {env['jax']} on {env['jax_backend']} ({env['jax_device']}); torch {env['torch']} "
        f"on {env['torch_device']}; {env['cpu_count']} CPU cores, torch threads "
        f"{env['torch_threads']}, XLA CPU client uses all cores"
    )
    print(
        f"{args.repeats} repeats x {args.steps} steps after {args.warmup} warm-up steps, "
        "median ms per step; jaxnn and torch repeats alternate\n",
        flush=True,
    )
    rows = []
    for name in names:
        rows.append(
            bench_workload(name, device, warmup=args.warmup, repeats=args.repeats, steps=args.steps)
        )
    print(_table(rows))
    print(
        "\ntorch/jaxnn > 1: jaxnn is faster. jaxnn compile s: first call (trace, compile, one "
        "step). Batches: mlp/cnn 128 x 40 MNIST-1D signals, transformer 32 x 128 characters."
    )
    report = {
        "environment": env,
        "protocol": {"repeats": args.repeats, "steps": args.steps, "warmup": args.warmup},
        "workloads": rows,
    }
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)
        print(f"wrote {args.json}")
    return report


if __name__ == "__main__":
    main()
