"""Helpers shared by the model modules (imported by them, never by the package's users).

Kept apart from :mod:`jaxnn.models` so that the model modules import no code back from their own
package: the package imports the modules, the modules import this file.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from jaxnn._checks import check_key, check_positive_int


def param_count(params) -> int:
    """Number of trainable scalars in a params pytree (Chapter 10: the parameter count).

    A dense layer costs ``in * out + out``; a convolution ``k^d * C_in * C_out + C_out`` whatever
    the image size, so most of a small CNN's parameters sit in its dense head.
    """
    return sum(int(np.size(leaf)) for leaf in jax.tree_util.tree_leaves(params))


def widths(name: str, hidden) -> tuple[int, ...]:
    """``hidden`` as a tuple of positive widths, one per hidden layer; an int ``n`` means ``(n,)``.

    Raises:
      ValueError: for anything but a positive int or a sequence of positive ints.
    """
    if isinstance(hidden, (int, np.integer)) and not isinstance(hidden, bool):
        hidden = (hidden,)
    out = int_tuple(name, hidden, "hidden")
    for width in out:
        check_positive_int(name, width, "every hidden width")
    return tuple(int(w) for w in out)


def int_tuple(name: str, value, what: str) -> tuple:
    """``value`` as a tuple of ints; anything else (None, a string, a float) is a ValueError."""
    ok = isinstance(value, (tuple, list)) and all(
        isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in value
    )
    if not ok:
        raise ValueError(f"{name}: expected {what} as a tuple of positive ints, got {value!r}")
    return tuple(int(v) for v in value)


def config_from_info(
    name: str, config_cls, info, values, overrides: dict, *, needs=("input_shape", "num_classes")
):
    """Build ``config_cls`` from a dataset info: ``values(info)`` fills the data-dependent fields,
    ``overrides`` (checked against the dataclass fields) take precedence.

    Raises:
      ValueError: if ``info`` lacks an attribute in ``needs`` or an override is not a field.
    """
    missing = [a for a in needs if not hasattr(info, a)]
    if missing:
        raise ValueError(
            f"{name}: expected a dataset info with {', '.join(needs)}, "
            f"got {type(info).__name__} without {', '.join(missing)}"
        )
    fields = {f.name for f in dataclasses.fields(config_cls)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise ValueError(f"{name}: expected fields from {sorted(fields)}, got {unknown}")
    return config_cls(**{**values(info), **overrides})


def dropout_active(name: str, rate: float, train: bool, key) -> bool:
    """Whether a model's dropout runs (``train`` and ``rate > 0``); then a ``key`` is required.

    Chapter 13: dropout masks activations during training only.

    Raises:
      ValueError: if dropout is active and ``key`` is None.
    """
    active = bool(train) and rate > 0.0
    if active and key is None:
        raise ValueError(
            f"{name}: expected a PRNG key for dropout (train=True, dropout={rate}), got key=None"
        )
    if active:
        check_key(name, key)
    return active


def check_cfg(name: str, cfg, config_cls) -> None:
    """Raise unless ``cfg`` is a ``config_cls``: a model never falls back to a default config."""
    if not isinstance(cfg, config_cls):
        module = config_cls.__module__.rsplit(".", 1)[-1]
        raise ValueError(
            f"{name}: expected cfg={module}.Config(...) (the config the params were made with), "
            f"got {type(cfg).__name__}"
        )


def check_state(name: str, state, want: dict) -> dict:
    """The model state rule: ``state`` must match ``init_state(cfg)``; ``None`` is ``{}``.

    Raises:
      ValueError: a stateful model without its state, or a state of other shapes.
    """
    state = {} if state is None else state
    want_shapes = jax.tree_util.tree_map(np.shape, want)
    got = jax.tree_util.tree_map(np.shape, state) if isinstance(state, dict) else state
    if got != want_shapes:
        raise ValueError(
            f"{name}: expected state= of shapes {want_shapes} (from init_state(cfg)), got {got}"
        )
    return state


def remat_scan(layer, params: list, h, xs=None, *, segment: int = 1):
    """``h <- layer(params[i], h, xs[i])`` for ``i = 0 .. n-1``, with rematerialization.

    Chapter 5: training stores every layer's activations for the backward pass. Here the backward
    pass keeps only the input of each segment of ``segment`` consecutive layers and recomputes the
    segment's activations when it reaches it: about one more forward pass of FLOPs for the memory
    of ``n / segment`` inputs plus one segment's activations. Outputs and gradients are those of
    the plain loop (the same ops on the same values; dropout keys in ``xs`` replay the same masks).

    The layers run as a ``lax.scan`` over their params stacked along a new leading axis (stacked
    inside the traced function, so the caller's params dict keeps one entry per layer), with
    ``jax.checkpoint`` around the segment. A ``jax.checkpoint`` around each call of an unrolled
    Python loop gives the same jaxpr-level saving but no saving in XLA:CPU's compiled program:
    the CPU pipeline drops the optimization barriers before scheduling, and the scheduler then
    runs every recomputation during the forward pass, so all the recomputed activations are alive
    at once (``benchmarks/memory.py`` measures it). The backward pass of a scan is a loop that
    visits one segment at a time, which pins the recomputation where it belongs.

    Args:
      layer: ``(layer_params, h, x) -> h`` of the same shape and dtype as ``h``.
      params: the layers' params, one pytree each, all of the same structure and shapes.
      h: the input of the first layer.
      xs: ``None`` or a pytree whose leaves have a leading axis of ``len(params)`` (per-layer
        dropout keys or layer indices); ``layer`` gets row ``i`` (or ``None``).
      segment: layers per checkpointed segment; trailing layers that do not fill a segment run
        plainly after the scan.

    Returns:
      the output of the last layer.
    """
    n = len(params)
    segment = max(1, min(segment, n))
    used = n - n % segment
    row = lambda tree, i: None if tree is None else jax.tree.map(lambda a: a[i], tree)
    if used:
        stacked = jax.tree.map(lambda *a: jnp.stack(a), *params[:used])  # leaves (used, ...)
        steps = (stacked, None if xs is None else jax.tree.map(lambda a: a[:used], xs))
        steps = jax.tree.map(lambda a: a.reshape(used // segment, segment, *a.shape[1:]), steps)

        def run_segment(h, step):
            seg_params, seg_xs = step
            for j in range(segment):
                h = layer(row(seg_params, j), h, row(seg_xs, j))
            return h, None

        # prevent_cse=False: inside a scan the loop already keeps XLA from merging the
        # recomputation with the forward pass (the JAX documentation's advice for scan bodies).
        h = jax.lax.scan(jax.checkpoint(run_segment, prevent_cse=False), h, steps)[0]
    for i in range(used, n):
        h = layer(params[i], h, row(xs, i))
    return h
