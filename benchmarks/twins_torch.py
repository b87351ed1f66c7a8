"""PyTorch twins of the jaxnn models, for ``jaxnn bench`` (Chapters 10-12).

Each twin takes a jaxnn ``Config`` and builds the same network (same layers, sizes, pooling,
activations, dropout, norm placement, positional encoding, heads and causal mask), so the two sides
of the benchmark do the same math. Its state-dict keys are the ones
:func:`jaxnn.weights.torch_names` maps, so :func:`copy_jaxnn_params` (or
``load_state_dict`` of a ``jaxnn export --format torch`` file) loads jaxnn params into a twin,
which lets the tests check that the twin computes the same function.

Importing this module needs PyTorch (the ``bench`` extra).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from jaxnn import models, weights

__all__ = [
    "TorchMLP",
    "TorchCNN",
    "TorchTransformer",
    "TorchRNN",
    "build_torch_twin",
    "copy_jaxnn_params",
    "torch_param_count",
]


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
        self.cfg = cfg
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
    dense head: ``Linear, ReLU, Dropout`` per hidden width (``fc``), and the ``out`` Linear.

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
        sizes = (math.prod(cfg.feature_shape), *cfg.hidden)
        self.fc = nn.ModuleList(
            nn.Linear(n_in, n_out) for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True)
        )
        self.drop = nn.Dropout(cfg.dropout)
        self.out = nn.Linear(sizes[-1], cfg.num_classes)

    def forward(self, x):  # (B, *input_shape) -> (B, num_classes)
        cfg = self.cfg
        h = x.reshape(x.shape[0], *cfg.input_shape[: cfg.ndim], cfg.in_channels)  # (B, *S, C)
        h = self.features(h.movedim(-1, 1))  # (B, C, *S')
        h = h.movedim(1, -1).flatten(1)  # (B, prod(S') * C), channels-last like jaxnn
        for fc in self.fc:
            h = self.drop(F.relu(fc(h)))  # (B, hidden_j)
        return self.out(h)


def _sinusoidal_table(length: int, dim: int, dtype=torch.float32) -> torch.Tensor:
    """``PE[p, 2i] = sin(p / 10000^(2i/D))``, ``PE[p, 2i+1] = cos(...)``, interleaved as jaxnn."""
    half = (dim + 1) // 2
    freqs = 1.0 / (10000.0 ** (2.0 * np.arange(half) / dim))  # (D/2,)
    angles = np.arange(length)[:, None] * freqs[None, :]  # (T, D/2)
    table = np.stack([np.sin(angles), np.cos(angles)], axis=-1).reshape(length, 2 * half)
    return torch.tensor(table[:, :dim], dtype=dtype)  # (T, D), rounded once from float64


class _Attention(nn.Module):
    """Multi-head self-attention with separate q, k, v, out projections (as jaxnn's)."""

    def __init__(self, dim: int, num_heads: int, bias: bool = True):
        super().__init__()
        self.num_heads = num_heads
        self.q, self.k, self.v, self.out = (nn.Linear(dim, dim, bias=bias) for _ in range(4))

    def forward(self, x, is_causal: bool):  # (B, T, D) -> (B, T, D)
        b, t, d = x.shape
        split = lambda a: a.view(b, t, self.num_heads, d // self.num_heads).transpose(1, 2)
        q, k, v = split(self.q(x)), split(self.k(x)), split(self.v(x))  # (B, H, T, Dh)
        heads = F.scaled_dot_product_attention(q, k, v, is_causal=is_causal)  # (B, H, T, Dh)
        return self.out(heads.transpose(1, 2).reshape(b, t, d))


class _Block(nn.Module):
    """Pre-norm block: ``x + Drop(MHA(LN(x)))``, then ``x + Drop(W2 GELU(W1 LN(x)))``."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: int, dropout: float, bias=True):
        super().__init__()
        self.ln1 = nn.LayerNorm(dim, eps=1e-5, bias=bias)
        self.ln2 = nn.LayerNorm(dim, eps=1e-5, bias=bias)
        self.attn = _Attention(dim, num_heads, bias)
        self.fc = nn.Linear(dim, mlp_ratio * dim, bias=bias)
        self.proj = nn.Linear(mlp_ratio * dim, dim, bias=bias)
        self.drop = nn.Dropout(dropout)

    def forward(self, x, is_causal: bool):  # (B, T, D) -> (B, T, D)
        x = x + self.drop(self.attn(self.ln1(x), is_causal))
        return x + self.drop(self.proj(F.gelu(self.fc(self.ln2(x)))))  # exact (erf) GELU


class TorchTransformer(nn.Module):
    """Twin of :mod:`jaxnn.models.transformer`: embedding plus positions, dropout, pre-norm
    blocks (causal for ``task="language_model"``), final LayerNorm, a Linear head (mean over time
    first for ``task="classification"``). ``bias=False`` drops every bias; ``tie_embeddings``
    makes the head's weight the embedding's (``head.weight = embed.weight``, as nanoGPT's
    ``lm_head``)."""

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
            _Block(cfg.dim, cfg.num_heads, cfg.mlp_ratio, cfg.dropout, cfg.bias)
            for _ in range(cfg.num_layers)
        )
        self.ln_f = nn.LayerNorm(cfg.dim, eps=1e-5, bias=cfg.bias)
        self.head = nn.Linear(cfg.dim, cfg.out_dim, bias=cfg.bias)
        if cfg.tie_embeddings:
            self.head.weight = self.embed.weight  # (V, D): one tensor, two names

    def forward(self, ids):  # (B, T) -> (B, T, V) or (B, C)
        t = ids.shape[1]
        h = self.embed(ids)  # (B, T, D)
        if self.cfg.positional == "learned":
            h = h + self.pos[:t]
        elif self.cfg.positional == "sinusoidal":
            h = h + self.pos_table[:t]
        h = self.drop(h)
        for block in self.blocks:
            h = block(h, is_causal=self.cfg.task == "language_model")
        h = self.ln_f(h)
        if self.cfg.task == "classification":
            h = h.mean(dim=1)  # (B, D)
        return self.head(h)


class TorchRNN(nn.Module):
    """Twin of :mod:`jaxnn.models.rnn`: one ``nn.GRU``, ``nn.LSTM`` or ``nn.RNN`` (tanh) with a
    layer per hidden width, registered under the cell's name (``gru``, ``lstm``, ``rnn``), then
    a Linear head on the top layer's ``h_T``. The gates are jaxnn's (GRU ``r, z, n`` with
    ``n = tanh(x W_n + b_n + r * (h U_n + c_n))``; LSTM ``i, f, g, o``), and so are the two biases
    of each layer."""

    _MODULES = {"gru": nn.GRU, "lstm": nn.LSTM, "rnn": nn.RNN}

    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        steps, features = cfg.sequence_shape
        if len(set(cfg.hidden)) != 1:
            raise ValueError(f"TorchRNN: expected equal hidden widths, got {cfg.hidden}")
        width = cfg.hidden[0]
        layers = self._MODULES[cfg.cell](features, width, len(cfg.hidden), batch_first=True)
        self.add_module(cfg.cell, layers)
        self.drop = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(width, cfg.num_classes)

    def forward(self, x):  # (B, *input_shape) -> (B, num_classes)
        layers = getattr(self, self.cfg.cell)
        _, h_n = layers(x.reshape(x.shape[0], *self.cfg.sequence_shape))  # (L, B, H)
        h_n = h_n[0] if self.cfg.cell == "lstm" else h_n  # the LSTM's (h_n, c_n)
        return self.head(self.drop(h_n[-1]))


_TWINS = {"mlp": TorchMLP, "cnn": TorchCNN, "transformer": TorchTransformer, "rnn": TorchRNN}
_NAMES = {twin: name for name, twin in _TWINS.items()}


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


def copy_jaxnn_params(twin: nn.Module, params: dict, state: dict | None = None) -> nn.Module:
    """Load a jaxnn params dict (and model state) into its twin (in place), converting layouts.

    The state dict comes from :func:`jaxnn.weights.to_torch`: dense ``w (in, out)`` becomes
    ``weight (out, in)``; convolution kernels ``HWIO`` / ``(k, I, O)`` become ``OIHW`` / ``(O,
    I, k)``; norms' ``scale, bias`` become ``weight, bias``; recurrent ``input``/``hidden`` dense
    layers become ``weight_ih``/``weight_hh`` and their biases. Each tensor is cast to the twin's
    dtype (call this after ``.double()``); the sinusoidal table is made in the params' dtype.
    Without ``state``, batch norms get the statistics of ``init_state`` (mean 0, variance 1).

    Returns:
      ``twin``.
    """
    name = _NAMES.get(type(twin))
    if name is None:
        raise ValueError(f"copy_jaxnn_params: expected a jaxnn twin, got {type(twin).__name__}")
    model = models.build(name, twin.cfg)
    state = models.get(name).init_state(twin.cfg) if state is None else state
    current = twin.state_dict()
    tensors = weights.to_torch(model, params, state)
    twin.load_state_dict(
        {k: torch.from_numpy(np.array(v)).to(current[k].dtype) for k, v in tensors.items()}
    )
    return twin
