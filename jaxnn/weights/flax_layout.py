"""jaxnn layers in Flax's parameter trees — Chapters 2, 11 and 12: the same arrays under Flax's
names. Pure dict manipulation: nothing here imports Flax.

Both libraries store a dense kernel as (in, out) and a convolution kernel as HWIO, so most layers
differ only in names. ``flax.linen`` keeps a module's variables in collections (``{"params":
..., "batch_stats": ...}``); a ``flax.nnx`` module keeps them as attributes, and
``nnx.to_pure_dict(nnx.state(module))`` is one dict of arrays (what :func:`to_nnx` returns and
``nnx.replace_by_pure_dict`` takes).

===========  ================================  ==============================================
layer        jaxnn                             Flax (linen ``Module`` / ``nnx`` module)
===========  ================================  ==============================================
dense        ``w`` (in, out), ``b``            ``kernel`` (in, out), ``bias``
             (``init_dense``)                  (``Dense`` / ``Linear``)
conv         ``w`` (*K, I, O), ``b``           ``kernel`` (*K, I, O), ``bias`` (``Conv``)
layer_norm   ``scale``, ``bias``               ``scale``, ``bias`` (``LayerNorm``)
batch_norm   ``scale``, ``bias``; state        ``scale``, ``bias``; ``mean``, ``var`` in the
             ``mean``, ``var``                 ``batch_stats`` collection (linen) or beside
                                               them (nnx) (``BatchNorm``)
embedding    ``table`` (V, D)                  ``embedding`` (V, D) (``Embed``)
attention    ``q``, ``k``, ``v``: ``w``        ``query``, ``key``, ``value``: ``kernel``
             (D_in, D), ``b`` (D,); ``out``:   (D_in, H, Dh), ``bias`` (H, Dh); ``out``:
             ``w`` (D, D_out), ``b``           ``kernel`` (H, Dh, D_out), ``bias``
                                               (``MultiHeadDotProductAttention`` /
                                               ``MultiHeadAttention``)
===========  ================================  ==============================================

Attention's reshapes are exact: head ``h`` of jaxnn's projections is columns ``h*Dh:(h+1)*Dh``
(rows of the output projection), which is Flax's ``[:, h, :]`` (``[h]``). The arrays keep
their type (a ``jax.Array`` stays one; the reshapes are views).
"""

from __future__ import annotations

__all__ = ["LAYERS", "to_linen", "from_linen", "to_nnx", "from_nnx"]

#: jaxnn key -> Flax key, per layer (attention's projections are sub-dicts).
_NAMES = {
    "dense": {"w": "kernel", "b": "bias"},
    "conv": {"w": "kernel", "b": "bias"},
    "layer_norm": {"scale": "scale", "bias": "bias"},
    "batch_norm": {"scale": "scale", "bias": "bias"},
    "embedding": {"table": "embedding"},
    "attention": {"q": "query", "k": "key", "v": "value", "out": "out"},
}
_STATS = {"batch_norm": ("mean", "var")}  # state arrays, under the same names in Flax
LAYERS = tuple(_NAMES)


def _check_keys(fn: str, layer: str, tree, want, what: str) -> None:
    if not isinstance(tree, dict) or set(tree) != set(want):
        got = sorted(tree) if isinstance(tree, dict) else type(tree).__name__
        raise ValueError(f"{fn}: expected {layer} {what} with keys {sorted(want)}, got {got}")


def _check_layer(fn: str, layer) -> None:
    if layer not in _NAMES:
        raise ValueError(f"{fn}: expected a layer in {LAYERS}, got {layer!r}")


def _heads(fn: str, num_heads, dim: int) -> int:
    if isinstance(num_heads, bool) or not isinstance(num_heads, int) or num_heads <= 0:
        raise ValueError(
            f"{fn}: expected num_heads as a positive int for attention, got {num_heads!r}"
        )
    if dim % num_heads:
        raise ValueError(f"{fn}: expected num_heads to divide the width {dim}, got {num_heads}")
    return dim // num_heads


def _attention_to_flax(fn: str, params: dict, num_heads) -> dict:
    out = {}
    for ours, theirs in _NAMES["attention"].items():
        _check_keys(fn, "attention", params[ours], ("w", "b"), f"params[{ours!r}]")
        w, b = params[ours]["w"], params[ours]["b"]
        dim = w.shape[1] if ours != "out" else w.shape[0]
        head_dim = _heads(fn, num_heads, dim)
        if ours == "out":  # (H*Dh, D_out) -> (H, Dh, D_out)
            out[theirs] = {"kernel": w.reshape(num_heads, head_dim, w.shape[1]), "bias": b}
        else:  # (D_in, H*Dh) -> (D_in, H, Dh); (H*Dh,) -> (H, Dh)
            out[theirs] = {
                "kernel": w.reshape(w.shape[0], num_heads, head_dim),
                "bias": b.reshape(num_heads, head_dim),
            }
    return out


def _attention_from_flax(fn: str, params: dict) -> dict:
    out = {}
    for ours, theirs in _NAMES["attention"].items():
        _check_keys(fn, "attention", params[theirs], ("kernel", "bias"), f"params[{theirs!r}]")
        kernel, bias = params[theirs]["kernel"], params[theirs]["bias"]
        if kernel.ndim != 3:
            raise ValueError(
                f"{fn}: expected attention {theirs} kernel of rank 3, got shape {kernel.shape}"
            )
        if ours == "out":  # (H, Dh, D_out) -> (H*Dh, D_out)
            out[ours] = {"w": kernel.reshape(-1, kernel.shape[-1]), "b": bias}
        else:  # (D_in, H, Dh) -> (D_in, H*Dh); (H, Dh) -> (H*Dh,)
            out[ours] = {"w": kernel.reshape(kernel.shape[0], -1), "b": bias.reshape(-1)}
    return out


def _to_flax(fn: str, layer, params, state, num_heads) -> tuple[dict, dict]:
    """``(params, stats)`` in Flax's names."""
    _check_layer(fn, layer)
    names, stats = _NAMES[layer], _STATS.get(layer, ())
    _check_keys(fn, layer, params, names, "params")
    _check_keys(fn, layer, {} if state is None else state, stats, "state")
    if layer == "attention":
        return _attention_to_flax(fn, params, num_heads), {}
    return {theirs: params[ours] for ours, theirs in names.items()}, {k: state[k] for k in stats}


def _from_flax(fn: str, layer, params, stats) -> tuple[dict, dict]:
    """``(params, state)`` in jaxnn's names from Flax's params and statistics."""
    _check_layer(fn, layer)
    names = _NAMES[layer]
    _check_keys(fn, layer, params, names.values(), "params")
    _check_keys(fn, layer, stats, _STATS.get(layer, ()), "statistics")
    if layer == "attention":
        return _attention_from_flax(fn, params), {}
    return {ours: params[theirs] for ours, theirs in names.items()}, dict(stats)


def to_linen(layer: str, params: dict, state: dict | None = None, *, num_heads=None) -> dict:
    """A jaxnn layer's params (and state) as the variables of the ``flax.linen`` module.

    Chapters 2, 11, 12: the module docstring's table; ``module.apply(variables, x)`` then
    computes what the jaxnn layer computes.

    Args:
      layer: one of :data:`LAYERS`.
      params: the layer's params (``init_dense(...)``, ``init_multi_head_attention(...)``, ...).
      state: batch norm's ``{"mean", "var"}``; ``None`` for the other layers.
      num_heads: attention heads (attention only).

    Returns:
      ``{"params": ...}``, with ``"batch_stats"`` for batch norm.

    Raises:
      ValueError: an unknown layer, params or state with other keys, or attention heads that
        are missing or do not divide the width.
    """
    flax_params, stats = _to_flax("to_linen", layer, params, state, num_heads)
    return {"params": flax_params, **({"batch_stats": stats} if stats else {})}


def from_linen(layer: str, variables: dict) -> tuple[dict, dict]:
    """A ``flax.linen`` module's variables as the jaxnn layer's ``(params, state)``.

    Chapters 2, 11, 12: the inverse of :func:`to_linen` (the head count comes from the kernels).

    Args:
      layer: one of :data:`LAYERS`.
      variables: ``module.init(key, x)`` or trained variables: ``{"params": ...}``, with
        ``"batch_stats"`` for batch norm.

    Returns:
      ``(params, state)``; ``state`` is ``{}`` except for batch norm.

    Raises:
      ValueError: an unknown layer or variables with other collections or keys.
    """
    _check_layer("from_linen", layer)
    collections = ("params", "batch_stats") if layer in _STATS else ("params",)
    _check_keys("from_linen", layer, variables, collections, "variables")
    return _from_flax("from_linen", layer, variables["params"], variables.get("batch_stats", {}))


def to_nnx(layer: str, params: dict, state: dict | None = None, *, num_heads=None) -> dict:
    """A jaxnn layer's params (and state) as the pure dict of the ``flax.nnx`` module's state.

    Chapters 2, 11, 12: ``nnx.replace_by_pure_dict(s := nnx.state(module), to_nnx(...))`` and
    ``nnx.update(module, s)`` load it.

    Args:
      layer: one of :data:`LAYERS`.
      params: the layer's params.
      state: batch norm's ``{"mean", "var"}``; ``None`` for the other layers.
      num_heads: attention heads (attention only).

    Returns:
      One dict: the params under Flax's names, batch norm's statistics beside them.

    Raises:
      ValueError: as :func:`to_linen`.
    """
    flax_params, stats = _to_flax("to_nnx", layer, params, state, num_heads)
    return {**flax_params, **stats}


def from_nnx(layer: str, pure: dict) -> tuple[dict, dict]:
    """The pure dict of a ``flax.nnx`` module's state as the jaxnn layer's ``(params, state)``.

    Chapters 2, 11, 12: the inverse of :func:`to_nnx`; ``pure`` is
    ``nnx.to_pure_dict(nnx.state(module))``.

    Args:
      layer: one of :data:`LAYERS`.
      pure: the module's state as one dict.

    Returns:
      ``(params, state)``; ``state`` is ``{}`` except for batch norm.

    Raises:
      ValueError: an unknown layer or a dict with other keys.
    """
    _check_layer("from_nnx", layer)
    if not isinstance(pure, dict):
        raise ValueError(
            f"from_nnx: expected the module's state as a dict, got {type(pure).__name__}"
        )
    stats = _STATS.get(layer, ())
    params = {k: v for k, v in pure.items() if k not in stats}
    return _from_flax("from_nnx", layer, params, {k: pure[k] for k in stats if k in pure})
