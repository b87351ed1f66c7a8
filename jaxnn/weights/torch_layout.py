"""The built-in models in PyTorch's layout — Chapters 2, 11 and 12: the same numbers, arranged
as ``torch.nn`` arranges them. Pure NumPy: nothing here imports PyTorch.

jaxnn computes a dense layer as ``x W + b`` with ``W`` of shape (in, out); ``torch.nn.Linear``
computes ``x W^T + b`` and stores ``weight`` as (out, in) (Chapter 2's ``W x + b``). Convolution
kernels are HWIO (``(K, I, O)`` in 1-D) here and OIHW (``(O, I, K)``) in PyTorch (Chapter 11).
Recurrent layers keep one dense layer for the input and one for the hidden state with the gates
side by side, in PyTorch's gate order (GRU ``r, z, n``; LSTM ``i, f, g, o``) and with its two
biases, so they map onto ``weight_ih_l{i}``, ``bias_ih_l{i}``, ``weight_hh_l{i}`` and
``bias_hh_l{i}`` transposed (Chapter 12). Attention keeps separate query, key, value and output
projections, each a ``torch.nn.Linear``.

:func:`torch_names` is the name map of a model: one :class:`Entry` per tensor of the PyTorch
state dict, with the jaxnn name (in a model file's naming, ``params.dense_0.w``,
``state.bn_0.mean``) and the :data:`LAYOUTS` transform between them. The PyTorch modules it
describes are the twins in ``benchmarks/twins_torch.py``:

========================  ============================================================
model                     PyTorch state-dict keys
========================  ============================================================
mlp                       ``net.{3i+1}`` for ``dense_i``: ``Sequential(Flatten, [Linear,
                          act, Dropout] per hidden layer, Linear)``
cnn                       ``features.{k}`` for ``conv_i`` (and ``bn_i`` right after it) in
                          ``Sequential([Conv, (BatchNorm), ReLU, (MaxPool)] per block)``;
                          ``fc.{j}`` for the hidden ``dense_j``, ``out`` for the last one
rnn                       ``{cell}.weight_ih_l{i}`` ... of one ``nn.GRU`` / ``nn.LSTM`` /
                          ``nn.RNN`` named after the cell; ``head``
transformer               ``embed``, ``pos`` (learned) or ``pos_table`` (sinusoidal),
                          ``blocks.{i}.{ln1, attn.{q, k, v, out}, ln2, fc, proj}``,
                          ``ln_f``, ``head`` (with ``bias=False`` no ``.bias`` keys; with
                          ``tie_embeddings`` ``head.weight`` is ``embed.weight``, and both
                          keys must hold it on import)
========================  ============================================================

Batch norm's running statistics (the model state) are ``running_mean`` and ``running_var``;
PyTorch's ``num_batches_tracked`` counter has no jaxnn twin. A recurrent model maps onto one
PyTorch module only when its layers have one width (PyTorch stacks layers of one size).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import numpy as np

from jaxnn.layers.embedding import sinusoidal_table
from jaxnn.weights.store import first_mismatch, flatten, specs

__all__ = ["LAYOUTS", "Entry", "torch_names", "to_torch", "from_torch"]

#: How a jaxnn array becomes the PyTorch one (and back).
LAYOUTS = {
    "same": "the array as it is",
    "transpose": "a dense weight (in, out) becomes PyTorch's (out, in), and back",
    "conv": "a kernel (*K, I, O) (HWIO; WIO in 1-D) becomes (O, I, *K) (OIHW; OIW), and back",
    "counter": "BatchNorm's num_batches_tracked: an int64 0 on export (jaxnn keeps no count), "
    "any integer dropped on import",
    "sinusoidal": "the twin's fixed table pos_table (max_len, D): jaxnn's sinusoidal_table in "
    "the embedding's dtype on export, checked (to 1e-3) and dropped on import",
}
_TABLE_ATOL = 1e-3  # a constant, not trained: only a different formula is refused


class Entry(NamedTuple):
    """One tensor of a PyTorch state dict: ``torch`` key, ``jaxnn`` name (``""`` for a tensor
    jaxnn does not keep) and the :data:`LAYOUTS` transform from jaxnn to PyTorch."""

    jaxnn: str
    torch: str
    layout: str


def _linear(name: str, key: str, bias: bool = True) -> list[Entry]:
    weight = Entry(f"{name}.w", f"{key}.weight", "transpose")
    return [weight, Entry(f"{name}.b", f"{key}.bias", "same")] if bias else [weight]


def _norm(name: str, key: str, bias: bool = True) -> list[Entry]:
    scale = Entry(f"{name}.scale", f"{key}.weight", "same")
    return [scale, Entry(f"{name}.bias", f"{key}.bias", "same")] if bias else [scale]


def _mlp(cfg) -> list[Entry]:
    entries = []
    for i in range(len(cfg.hidden) + 1):  # Sequential(Flatten, [Linear, act, Dropout]..., Linear)
        entries += _linear(f"params.dense_{i}", f"net.{3 * i + 1}")
    return entries


def _batch_norm(i: int, key: str) -> list[Entry]:
    return _norm(f"params.bn_{i}", key) + [
        Entry(f"state.bn_{i}.mean", f"{key}.running_mean", "same"),
        Entry(f"state.bn_{i}.var", f"{key}.running_var", "same"),
        Entry("", f"{key}.num_batches_tracked", "counter"),
    ]


def _cnn(cfg) -> list[Entry]:
    entries, index = [], 0
    for i, pooled in enumerate(cfg.pooled_after()):  # [Conv, (BatchNorm), ReLU, (MaxPool)]
        entries += [
            Entry(f"params.conv_{i}.w", f"features.{index}.weight", "conv"),
            Entry(f"params.conv_{i}.b", f"features.{index}.bias", "same"),
        ]
        if cfg.batch_norm:
            entries += _batch_norm(i, f"features.{index + 1}")
        index += 2 + int(cfg.batch_norm) + int(pooled)
    for j in range(len(cfg.hidden)):
        entries += _linear(f"params.dense_{j}", f"fc.{j}")
    return entries + _linear(f"params.dense_{len(cfg.hidden)}", "out")


def _rnn(cfg) -> list[Entry]:
    if len(set(cfg.hidden)) != 1:
        raise ValueError(
            f"torch_names: expected recurrent layers of one width (PyTorch stacks layers of one "
            f"size in one nn.{cfg.cell.upper()}), got hidden={cfg.hidden}"
        )
    entries, sides = [], (("input", "ih"), ("hidden", "hh"))
    for i in range(len(cfg.hidden)):  # PyTorch's order: weight_ih, weight_hh, bias_ih, bias_hh
        name, key = f"params.cell_{i}", f"{cfg.cell}.{{}}_{{}}_l{i}"
        entries += [Entry(f"{name}.{p}.w", key.format("weight", s), "transpose") for p, s in sides]
        entries += [Entry(f"{name}.{p}.b", key.format("bias", s), "same") for p, s in sides]
    return entries + _linear("params.head", "head")


def _transformer(cfg) -> list[Entry]:
    entries = []  # PyTorch's order: a module's own tensors, then its children's
    if cfg.positional == "learned":
        entries.append(Entry("params.pos.table", "pos", "same"))
    elif cfg.positional == "sinusoidal":
        entries.append(Entry("", "pos_table", "sinusoidal"))
    entries.append(Entry("params.embed.table", "embed.weight", "same"))
    bias = cfg.bias
    for i in range(cfg.num_layers):
        name, key = f"params.block_{i}", f"blocks.{i}"
        entries += _norm(f"{name}.ln1", f"{key}.ln1", bias) + _norm(
            f"{name}.ln2", f"{key}.ln2", bias
        )
        for proj in ("q", "k", "v", "out"):
            entries += _linear(f"{name}.attn.{proj}", f"{key}.attn.{proj}", bias)
        entries += _linear(f"{name}.mlp.fc", f"{key}.fc", bias)
        entries += _linear(f"{name}.mlp.proj", f"{key}.proj", bias)
    entries += _norm("params.ln_f", "ln_f", bias)
    if not cfg.tie_embeddings:
        return entries + _linear("params.head", "head", bias)
    # tied: the head's weight (V, D) is the embedding table itself (nanoGPT's lm_head)
    tied = [Entry("params.embed.table", "head.weight", "same")]
    return entries + tied + ([Entry("params.head.b", "head.bias", "same")] if bias else [])


_MAPS = {"mlp": _mlp, "cnn": _cnn, "rnn": _rnn, "transformer": _transformer}


def torch_names(model) -> tuple[Entry, ...]:
    """The name map of ``model``: one :class:`Entry` per tensor of its PyTorch state dict.

    Chapters 2, 11, 12: which PyTorch tensor holds which jaxnn array, and how it is laid out.

    Args:
      model: a :class:`jaxnn.models.Model` (``jaxnn.models.build(name, cfg)``).

    Returns:
      The entries, in the PyTorch module's order.

    Raises:
      ValueError: an unknown model, or a recurrent model whose layers differ in width.
    """
    if model.name not in _MAPS:
        raise ValueError(f"torch_names: expected a model in {sorted(_MAPS)}, got {model.name!r}")
    return tuple(_MAPS[model.name](model.cfg))


def _forward(layout: str, a: np.ndarray) -> np.ndarray:
    """The PyTorch array: a new, writable, C-ordered copy (never a view of the input)."""
    if layout == "transpose":
        a = a.T  # (in, out) -> (out, in)
    elif layout == "conv":
        a = np.moveaxis(a, (-1, -2), (0, 1))  # (*K, I, O) -> (O, I, *K)
    return np.array(a, order="C")


def _backward(layout: str, a: np.ndarray) -> np.ndarray:
    """The jaxnn array: a new, writable, C-ordered copy (never a view of a torch tensor)."""
    if layout == "transpose":
        a = a.T  # (out, in) -> (in, out)
    elif layout == "conv":
        a = np.moveaxis(a, (0, 1), (-1, -2))  # (O, I, *K) -> (*K, I, O)
    return np.array(a, order="C")


def _forward_shape(layout: str, shape: tuple[int, ...]) -> tuple[int, ...]:
    return _forward(layout, np.empty(shape, np.int8)).shape


def _jaxnn_shapes(model) -> dict[str, tuple[int, ...]]:
    params, state = jax.eval_shape(model.init, jax.random.key(0))
    return {name: shape for name, (shape, _) in specs({"params": params, "state": state}).items()}


def _constant(entry: Entry, model, dtype) -> np.ndarray:
    if entry.layout == "counter":
        return np.zeros((), np.int64)
    return sinusoidal_table(model.cfg.max_len, model.cfg.dim).astype(dtype)  # (max_len, D)


def to_torch(model, params, state=None) -> dict[str, np.ndarray]:
    """A jaxnn model's params and state as the state dict of its PyTorch twin.

    Chapters 2, 11, 12: each array goes to its :func:`torch_names` key with its layout
    transform; dtypes are kept (the fixed positional table takes the embedding's dtype).
    ``module.load_state_dict({k: torch.from_numpy(v) ...})`` (or the safetensors file of these
    arrays, read with ``safetensors.torch.load_file``) loads it into the twin.

    Args:
      model: the :class:`jaxnn.models.Model` the params belong to.
      params: its params.
      state: its state (batch-norm statistics); ``None`` for a stateless model.

    Returns:
      ``{torch key: NumPy array}``, in the PyTorch module's order; each a new, writable array
      (``torch.from_numpy`` shares it with no jaxnn buffer).

    Raises:
      ValueError: params or state whose names or shapes do not match ``model`` (the first
        mismatch named), or a model :func:`torch_names` cannot map.
    """
    entries = torch_names(model)
    flat = flatten({"params": params, "state": {} if state is None else state})
    shapes = _jaxnn_shapes(model)
    problem = first_mismatch(flat, {name: (shape, None) for name, shape in shapes.items()})
    if problem:
        raise ValueError(f"to_torch: {model.name}: {problem}")
    dtype = flat["params.embed.table"].dtype if model.name == "transformer" else None
    return {
        e.torch: _forward(e.layout, flat[e.jaxnn]) if e.jaxnn else _constant(e, model, dtype)
        for e in entries
    }


def _check_constant(entry: Entry, tensor: np.ndarray, model) -> None:
    if entry.layout == "counter" and not np.issubdtype(tensor.dtype, np.integer):
        raise ValueError(
            f"from_torch: expected {entry.torch!r} as an integer count, got {tensor.dtype}"
        )
    if entry.layout == "sinusoidal":
        table = sinusoidal_table(model.cfg.max_len, model.cfg.dim)
        gap = float(np.max(np.abs(np.asarray(tensor, np.float64) - table)))
        if not gap <= _TABLE_ATOL:
            raise ValueError(
                f"from_torch: expected {entry.torch!r} to be the sinusoidal table of "
                f"jaxnn.layers.sinusoidal_positions (to {_TABLE_ATOL}), got values {gap:.3g} away"
            )


def _nest(flat: dict[str, np.ndarray]) -> dict:
    tree: dict = {}
    for name, value in flat.items():
        *parents, leaf = name.split(".")
        node = tree
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return tree


def from_torch(model, tensors) -> tuple[dict, dict]:
    """A PyTorch twin's state dict as jaxnn params and state.

    Chapters 2, 11, 12: the inverse of :func:`to_torch`, bit for bit: each tensor goes back to
    its jaxnn name with the inverse layout transform, its dtype kept. Every key of the map must
    be there with the shape the model expects, and no other.

    Args:
      model: the :class:`jaxnn.models.Model` to build params for.
      tensors: ``{torch key: array}`` as NumPy arrays (``{k: v.numpy() for k, v in
        module.state_dict().items()}``, or ``jaxnn.weights.read(path)[0]`` for a file).

    Returns:
      ``(params, state)``: nested dicts of new NumPy arrays (copies: training the PyTorch module
      afterwards changes nothing here); ``state`` is ``{}`` for a stateless model.

    Raises:
      ValueError: a missing key, a shape other than the model's, an unexpected key, a
        positional table that is not jaxnn's, or a model :func:`torch_names` cannot map.
    """
    entries = torch_names(model)
    tensors = {k: np.asarray(v) for k, v in tensors.items()}
    shapes = _jaxnn_shapes(model)
    want: dict[str, tuple[tuple[int, ...], None]] = {}
    for e in entries:
        if e.layout == "counter":
            want[e.torch] = ((), None)
        elif e.layout == "sinusoidal":
            want[e.torch] = ((model.cfg.max_len, model.cfg.dim), None)
        else:
            want[e.torch] = (_forward_shape(e.layout, shapes[e.jaxnn]), None)
    problem = first_mismatch(tensors, want)
    if problem:
        raise ValueError(f"from_torch: {model.name}: {problem}")
    flat: dict[str, np.ndarray] = {}
    source: dict[str, str] = {}  # the torch key each array came from
    for e in entries:
        if e.jaxnn in flat:  # a tied weight: both tensors must hold the one array
            if not np.array_equal(flat[e.jaxnn], _backward(e.layout, tensors[e.torch])):
                raise ValueError(
                    f"from_torch: {model.name}: expected {e.torch!r} to equal "
                    f"{source[e.jaxnn]!r} (tied weights), got different values"
                )
        elif e.jaxnn:
            flat[e.jaxnn], source[e.jaxnn] = _backward(e.layout, tensors[e.torch]), e.torch
        else:
            _check_constant(e, tensors[e.torch], model)
    tree = _nest(flat)
    return tree["params"], tree.get("state", {})
