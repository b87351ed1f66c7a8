"""Property-based fuzzing of every public function with hypothesis.

The property, for every public activation, loss, layer, model and the data loader: a call either
returns, and then its floating-point outputs are finite whenever its floating-point inputs are
finite and within the family's documented magnitude (``Family.limit``), or it raises the
documented ``ValueError`` (``jaxnn.errors.UserError`` included) from inside jaxnn with a message
that says what was expected. Any other exception (``TypeError``, ``IndexError``,
``ZeroDivisionError``, an error from inside JAX or NumPy) fails the test.

Each family first builds a mostly valid call chain (``init`` then ``apply``), then each call of
the chain may get one argument replaced by a mutant: a wrong shape (an axis added, removed, made
empty or one longer), a wrong dtype (float16, bfloat16, int32, bool, float64 with x64 off), values
that are NaN, infinite, huge or tiny, or a scalar of the wrong kind (``None``, ``"abc"``, ``-1``,
``nan``, ``[1]``). Cheap families are also run under ``jax.jit``, where static checks still fire
and value checks are documented to be skipped.

The default suite draws 30 cases per family; ``-m slow`` draws 300.
"""

from __future__ import annotations

import dataclasses
import datetime
import math
import os
import re
import types
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import jaxnn
from jaxnn import activations, layers, losses
from jaxnn.data import load
from jaxnn.models import cnn, mlp, rnn, transformer

JAXNN_DIR = os.path.dirname(jaxnn.__file__)

NAN, INF = float("nan"), float("inf")
SPECIALS = (NAN, INF, -INF, 0.0, -0.0, 1e4, -1e4, 3e38, -3e38, 1e30, 1e-30, 1e-45, 5e-324, 7e4)
WEIRD = (None, "", "abc", -1, 0, 2.5, NAN, INF, -INF, True, (), [1], {}, 10**30)
FLOAT_DTYPES = (np.float32, np.float16, jnp.bfloat16, np.float64)
DTYPES = (*FLOAT_DTYPES, np.int32, np.bool_)

# Each family's default settings; the slow suite multiplies the examples by ten.
PROFILES = {
    "default": settings(
        max_examples=30,
        deadline=datetime.timedelta(seconds=30),
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    ),
    "slow": settings(
        max_examples=300,
        deadline=datetime.timedelta(seconds=60),
        derandomize=False,
        database=None,
        print_blob=True,
        suppress_health_check=list(HealthCheck),
    ),
}


# ----------------------------------------------------------------------------------------------
# Arrays and values.


@st.composite
def arrays(draw, shape=None, dtype=None, *, mode=None, low=None, high=None):
    """A NumPy or JAX array; by default of a random small shape, dtype and value mode."""
    if shape is None:
        shape = tuple(draw(st.lists(st.integers(0, 3), max_size=3)))
    if dtype is None:
        dtype = draw(st.sampled_from(DTYPES))
    elif isinstance(dtype, st.SearchStrategy):
        dtype = draw(dtype)
    n = math.prod(shape)
    if np.dtype(dtype) == np.bool_:
        values = np.asarray(draw(st.lists(st.booleans(), min_size=n, max_size=n)), bool)
    elif np.issubdtype(np.dtype(dtype), np.integer):
        lo, hi = (-2 if low is None else low), (9 if high is None else high)
        values = np.asarray(draw(st.lists(st.integers(lo, hi), min_size=n, max_size=n)), np.int64)
    else:
        mode = mode or draw(st.sampled_from(("normal", "normal", "normal", "special")))
        element = st.floats(-3, 3) if mode == "normal" else st.sampled_from(SPECIALS)
        values = np.asarray(draw(st.lists(element, min_size=n, max_size=n)), np.float64)
    with np.errstate(all="ignore"):
        arr = values.reshape(shape).astype(dtype)
    return jnp.asarray(arr) if draw(st.booleans()) else arr


def floats(shape, dtype=np.float32, **kw):
    return arrays(shape, st.sampled_from(FLOAT_DTYPES) if dtype is None else dtype, **kw)


def is_key(x) -> bool:
    return isinstance(x, jax.Array) and jnp.issubdtype(x.dtype, jax.dtypes.prng_key)


def is_array(x) -> bool:
    return isinstance(x, (np.ndarray, np.generic, jax.Array)) and not is_key(x)


@st.composite
def reshaped(draw, arr):
    """``arr`` with one axis added, removed, emptied or lengthened."""
    shape = list(np.shape(arr))
    kind = draw(st.sampled_from(("add", "drop", "empty", "grow")))
    if kind == "add" or not shape:
        shape.insert(draw(st.integers(0, len(shape))), draw(st.integers(1, 2)))
    else:
        axis = draw(st.integers(0, len(shape) - 1))
        if kind == "drop":
            del shape[axis]
        else:
            shape[axis] = 0 if kind == "empty" else shape[axis] + 1
    return draw(arrays(tuple(shape), np.asarray(arr).dtype if hasattr(arr, "dtype") else None))


@st.composite
def revalued(draw, arr):
    """``arr`` with one element made special (NaN, inf, huge, tiny) or all scaled by one."""
    out = np.array(arr)
    if out.size == 0 or not np.issubdtype(out.dtype, np.floating):
        return draw(arrays(np.shape(arr), np.float32, mode="special"))
    special = draw(st.sampled_from(SPECIALS))
    with np.errstate(all="ignore"):
        if draw(st.booleans()):
            out.reshape(-1)[draw(st.integers(0, out.size - 1))] = special
        else:
            out = (out * special).astype(out.dtype)
    return out


@st.composite
def recast(draw, arr):
    dtype = draw(st.sampled_from(DTYPES))
    with np.errstate(all="ignore"):
        return np.asarray(arr).astype(dtype)


def mutants(value):
    """A strategy of values that replace ``value`` in a call."""
    if is_key(value):
        return st.sampled_from((None, 0, np.zeros((3,), np.uint32), "key"))
    if is_array(value):
        return st.one_of(
            reshaped(value), recast(value), revalued(value), arrays(), st.sampled_from(WEIRD)
        )
    if isinstance(value, dict) and value:
        return dict_mutants(value)
    if isinstance(value, tuple) and value and all(is_array(v) for v in value):
        return st.integers(0, len(value) - 1).flatmap(
            lambda i: mutants(value[i]).map(lambda m: value[:i] + (m,) + value[i + 1 :])
        )
    if isinstance(value, float) and not isinstance(value, bool):
        return st.sampled_from((*SPECIALS, -value, *WEIRD))
    return st.sampled_from(WEIRD)


@st.composite
def dict_mutants(draw, tree):
    """``tree`` (a params or state dict) with one key dropped or one entry mutated."""
    key = draw(st.sampled_from(sorted(tree)))
    out = dict(tree)
    if draw(st.integers(0, 3)) == 0:
        del out[key]
    else:
        out[key] = draw(mutants(tree[key]))
    return out


# ----------------------------------------------------------------------------------------------
# The property.


class Stop(Exception):
    """The chain stopped at a documented ValueError; nothing after it can run."""


def _leaves(tree) -> list:
    return jax.tree_util.tree_leaves(tree, is_leaf=lambda x: x is None)


def inputs_in_limit(args, kwargs, limit: float, limit16: float) -> bool:
    """Whether every float input is finite and within the family's documented magnitude."""
    for leaf in _leaves((args, kwargs)):
        if isinstance(leaf, float):
            arr = np.asarray(leaf)
        elif is_array(leaf) and jnp.issubdtype(leaf.dtype, jnp.floating):
            arr = np.asarray(leaf, np.float64)
        else:
            continue
        bound = limit16 if getattr(leaf, "dtype", None) == np.float16 else limit
        if arr.size and not (np.isfinite(arr).all() and np.abs(arr).max() <= bound):
            return False
    return True


def outputs_finite(out) -> bool:
    for leaf in _leaves(out):
        if is_array(leaf) and jnp.issubdtype(leaf.dtype, jnp.inexact):
            if not np.isfinite(np.asarray(leaf, np.float64)).all():
                return False
    return True


def describe(fn, args, kwargs) -> str:
    def one(v):
        if is_key(v):
            return f"key{tuple(v.shape)}"
        if is_array(v):
            head = f"{type(v).__name__}{tuple(np.shape(v))}:{v.dtype}"
            return f"{head}={np.asarray(v).tolist()}" if np.size(v) <= 6 else f"{head}=..."
        if isinstance(v, dict):
            return "{" + ", ".join(f"{k!r}: {one(x)}" for k, x in v.items()) + "}"
        if isinstance(v, tuple) and any(is_array(x) for x in v):
            return "(" + ", ".join(one(x) for x in v) + ")"
        return repr(v)

    parts = [one(a) for a in args] + [f"{k}={one(v)}" for k, v in kwargs.items()]
    return f"{getattr(fn, '__qualname__', fn)}({', '.join(parts)})"


# "fn: ...", "load('x'): ...", "Splits[x].train: ...": the message starts by naming the function.
NAMES_A_FUNCTION = re.compile(r"^[\w.]+(\([^)]*\))?(\[[^\]]*\])?(\.\w+)?: ")


def assert_documented(err: ValueError, what: str) -> None:
    """The ValueError came from jaxnn's own checks and its message names the function."""
    frames = []
    tb = err.__traceback__
    while tb is not None:
        frames.append(tb.tb_frame.f_code.co_filename)
        tb = tb.tb_next
    assert frames and frames[-1].startswith(JAXNN_DIR), (
        f"{what} raised ValueError from outside jaxnn ({frames[-1] if frames else '?'}): {err}"
    )
    assert NAMES_A_FUNCTION.match(str(err)), f"{what} raised ValueError naming no function: {err}"


def checked_call(fn, args, kwargs, limits: tuple[float, float] | None):
    """Call ``fn``; given ``limits`` (any dtype, float16) also check the finiteness promise."""
    what = describe(fn, args, kwargs)
    try:
        out = fn(*args, **kwargs)
        jax.block_until_ready([x for x in _leaves(out) if isinstance(x, jax.Array)])
    except ValueError as err:
        assert_documented(err, what)
        raise Stop from err
    except Exception as err:
        raise AssertionError(f"{what} raised {type(err).__name__}: {err}") from err
    if limits is not None and inputs_in_limit(args, kwargs, *limits):
        assert outputs_finite(out), f"{what} returned non-finite values for finite input: {out}"
    return out


_JITTED: dict = {}


def jitted(fn):
    """``fn`` under ``jax.jit`` with every array argument traced and the rest closed over.

    The compiled function is kept per (fn, argument structure, static values), so a shape seen
    before is not compiled again.
    """

    def call(*args, **kwargs):
        leaves, tree = jax.tree_util.tree_flatten((args, kwargs))
        traced = tuple(is_array(leaf) or is_key(leaf) for leaf in leaves)
        static = tuple(None if t else leaf for leaf, t in zip(leaves, traced, strict=True))

        def inner(*arrays):
            it = iter(arrays)
            full = [next(it) if t else leaf for leaf, t in zip(static, traced, strict=True)]
            a, k = jax.tree_util.tree_unflatten(tree, full)
            return fn(*a, **k)

        try:
            cache_key = (fn, tree, traced, tuple((type(v), v) for v in static))
            compiled = _JITTED.setdefault(cache_key, jax.jit(inner))
        except TypeError:  # an unhashable static value: compile without the cache
            compiled = jax.jit(inner)
        return compiled(*[leaf for leaf, t in zip(leaves, traced, strict=True) if t])

    call.__qualname__ = f"jit({getattr(fn, '__qualname__', fn)})"
    return call


class Runner:
    """Calls functions for one fuzz case: maybe mutates one argument, then checks the property."""

    def __init__(self, draw, family: Family):
        self.draw, self.family = draw, family
        self.jit = family.jit and draw(st.integers(0, 3)) == 0  # a quarter under jit

    def __call__(self, fn, *args, **kwargs):
        draw, fam = self.draw, self.family
        slots = [("arg", i) for i in range(len(args))] + [("kw", k) for k in kwargs]
        slots = [(where, which) for where, which in slots if (fn, which) not in KNOWN_BUGS]
        if slots and draw(st.integers(0, 2)) == 0:  # a third of the calls get one mutant
            where, which = draw(st.sampled_from(slots))
            if where == "arg":
                args = args[:which] + (draw(mutants(args[which])),) + args[which + 1 :]
            else:
                kwargs = {**kwargs, which: draw(mutants(kwargs[which]))}
        try:
            out = checked_call(fn, args, kwargs, (fam.limit, fam.limit16))
        except Stop:
            if self.jit:  # value checks are skipped under jit: it may return anything
                self._jit_call(fn, args, kwargs, must_be_finite=False)
            raise
        if self.jit:
            self._jit_call(fn, args, kwargs, must_be_finite=outputs_finite(out))
        return out

    def _jit_call(self, fn, args, kwargs, must_be_finite: bool):
        try:
            out = checked_call(jitted(fn), args, kwargs, None)
        except Stop:
            return
        assert not must_be_finite or outputs_finite(out), (
            f"{describe(jitted(fn), args, kwargs)} is not finite under jit, but is eager: {out}"
        )


# Arguments not mutated because of a known bug (none today): an entry here needs a strict xfail
# case below, and is deleted once the bug is fixed so the fuzz covers the argument again.
KNOWN_BUGS: dict[tuple[Callable, int | str], str] = {}


@dataclasses.dataclass(frozen=True)
class Family:
    """A fuzz family: a builder that makes and runs a call chain, and the names it covers."""

    build: Callable
    covers: tuple[str, ...]
    limit: float = 1e4  # |x| up to which finite inputs promise finite outputs
    limit16: float = 1e2  # the same for float16 inputs
    jit: bool = False


FAMILIES: dict[str, Family] = {}


def family(*covers, limit=1e4, limit16=1e2, jit=False):
    def register(build):
        FAMILIES[build.__name__.removeprefix("fuzz_")] = Family(build, covers, limit, limit16, jit)
        return build

    return register


def keys(draw):
    return jax.random.key(draw(st.integers(0, 3)))


def small(draw, lo=1, hi=3):
    return draw(st.integers(lo, hi))


# ----------------------------------------------------------------------------------------------
# Activations.


def _activation(fn_name):
    def build(draw, run):
        fn = getattr(activations, fn_name)
        x = draw(arrays())
        kwargs = {}
        if fn_name == "leaky_relu" and draw(st.booleans()):
            kwargs["negative_slope"] = draw(st.sampled_from((0.01, 0.2, 1.0)))
        if fn_name == "gelu" and draw(st.booleans()):
            kwargs["approximate"] = draw(st.booleans())
        if fn_name in ("softmax", "log_softmax") and draw(st.booleans()):
            kwargs["axis"] = draw(st.integers(-3, 2))
        run(fn, x, **kwargs)

    build.__name__ = f"fuzz_{fn_name}"
    return family(f"activations.{fn_name}", jit=True)(build)


for _name in ("relu", "leaky_relu", "gelu", "tanh", "sigmoid", "softmax", "log_softmax"):
    _activation(_name)
_activation("identity")


@family("activations.get")
def fuzz_get(draw, run):
    name = draw(st.one_of(st.sampled_from(activations.NAMES), st.text(max_size=5)))
    fn = run(activations.get, name)
    run(fn, draw(arrays()))


# ----------------------------------------------------------------------------------------------
# Losses.


def reduction(draw):
    return draw(st.sampled_from(("mean", "sum", "none")))


@family("losses.mse", limit16=50.0, jit=True)
def fuzz_mse(draw, run):
    shape = (small(draw, 0), *draw(st.lists(st.integers(1, 3), max_size=2)))
    dtype = draw(st.sampled_from(FLOAT_DTYPES))
    run(
        losses.mse,
        draw(arrays(shape, dtype)),
        draw(arrays(shape, dtype)),
        reduction=reduction(draw),
    )


def _logits_and_labels(draw):
    lead = tuple(draw(st.lists(st.integers(0, 2), max_size=2)))
    classes = small(draw, 1, 3)
    logits = draw(arrays((*lead, classes), draw(st.sampled_from(FLOAT_DTYPES))))
    if draw(st.booleans()):
        labels = draw(arrays(lead, np.int32, low=0, high=classes - 1))
    else:
        raw = draw(arrays((*lead, classes), np.float32, mode="normal"))
        labels = np.asarray(jax.nn.softmax(jnp.asarray(raw, jnp.float32), axis=-1))
    return logits, labels


@family("losses.cross_entropy", jit=True)
def fuzz_cross_entropy(draw, run):
    logits, labels = _logits_and_labels(draw)
    smoothing = draw(st.sampled_from((0.0, 0.0, 0.1, 0.5)))
    run(
        losses.cross_entropy,
        logits,
        labels,
        label_smoothing=smoothing,
        reduction=reduction(draw),
    )


@family("losses.accuracy", jit=True)
def fuzz_accuracy(draw, run):
    run(losses.accuracy, *_logits_and_labels(draw))


@family("losses.binary_cross_entropy", jit=True)
def fuzz_binary_cross_entropy(draw, run):
    shape = (small(draw, 0, 2), *draw(st.lists(st.integers(1, 2), max_size=2)))
    logits = draw(arrays(shape, draw(st.sampled_from(FLOAT_DTYPES))))
    label_dtype = draw(st.sampled_from((np.float32, np.int32, np.bool_)))
    labels = draw(arrays(shape, label_dtype, low=0, high=1))
    if label_dtype == np.float32:
        labels = np.clip(np.abs(np.asarray(labels)), 0.0, 1.0)
    run(losses.binary_cross_entropy, logits, labels, reduction=reduction(draw))


@family("losses.l2_penalty", limit16=10.0, jit=True)
def fuzz_l2_penalty(draw, run):
    params = {
        "w": draw(arrays((small(draw), small(draw)))),
        "b": draw(arrays((small(draw),))),
    }
    run(
        losses.l2_penalty,
        params,
        draw(st.sampled_from((0.0, 1e-4, 1.0))),
        exclude_1d=draw(st.booleans()),
    )


# ----------------------------------------------------------------------------------------------
# Layers. Inputs are kept within |x| <= 10 for the finiteness promise (sums of a few products).

LAYER = {"limit": 10.0, "limit16": 10.0}


@family("layers.init_dense", "layers.dense", jit=True, **LAYER)
def fuzz_dense(draw, run):
    d_in, d_out = small(draw), small(draw)
    params = run(layers.init_dense, keys(draw), d_in, d_out)
    lead = tuple(draw(st.lists(st.integers(0, 2), max_size=2)))
    run(layers.dense, params, draw(floats((*lead, d_in), None)))


def _conv(nsp):
    init = getattr(layers, f"init_conv{nsp}d")
    conv = getattr(layers, f"conv{nsp}d")

    def build(draw, run):
        k, c_in, c_out = small(draw), small(draw), small(draw)
        params = run(init, keys(draw), k, c_in, c_out)
        x = draw(floats((small(draw), *(small(draw, 1, 3) for _ in range(nsp)), c_in), None))
        kwargs = {}
        if draw(st.booleans()):
            kwargs["stride"] = small(draw, 1, 2)
        if draw(st.booleans()):
            kwargs["padding"] = draw(st.sampled_from(("SAME", "VALID", 1, ((0, 1),) * nsp)))
        if draw(st.booleans()):
            kwargs["dilation"] = small(draw, 1, 2)
        run(conv, params, x, **kwargs)

    build.__name__ = f"fuzz_conv{nsp}d"
    return family(f"layers.init_conv{nsp}d", f"layers.conv{nsp}d", **LAYER)(build)


_conv(1)
_conv(2)


def _pool(name, nsp):
    def build(draw, run):
        x = draw(floats((small(draw), *(small(draw, 1, 3) for _ in range(nsp)), small(draw)), None))
        window = small(draw, 1, 2)
        stride = draw(st.sampled_from((None, 1, 2)))
        padding = draw(st.sampled_from(("VALID", "SAME", 0, 1)))
        method = draw(st.sampled_from(("auto", "reshape", "reduce_window")))
        run(getattr(layers, name), x, window, stride, padding, method=method)

    build.__name__ = f"fuzz_{name}"
    return family(f"layers.{name}", jit=True, **LAYER)(build)


for _name, _nsp in (("max_pool2d", 2), ("avg_pool2d", 2), ("max_pool1d", 1), ("avg_pool1d", 1)):
    _pool(_name, _nsp)


@family("layers.global_avg_pool", jit=True, **LAYER)
def fuzz_global_avg_pool(draw, run):
    run(layers.global_avg_pool, draw(floats((small(draw), small(draw), small(draw)), None)))


@family("layers.init_layer_norm", "layers.layer_norm", jit=True, **LAYER)
def fuzz_layer_norm(draw, run):
    dim = small(draw)
    params = run(layers.init_layer_norm, dim)
    x = draw(floats((*draw(st.lists(st.integers(1, 2), max_size=2)), dim), None))
    run(layers.layer_norm, params, x, eps=draw(st.sampled_from((1e-5, 1e-3, 1.0))))


@family("layers.init_batch_norm", "layers.init_batch_norm_state", "layers.batch_norm", **LAYER)
def fuzz_batch_norm(draw, run):
    dim = small(draw)
    params = run(layers.init_batch_norm, dim)
    state = run(layers.init_batch_norm_state, dim)
    x = draw(floats((small(draw), *draw(st.lists(st.integers(1, 2), max_size=2)), dim), None))
    momentum = draw(st.sampled_from((0.0, 0.9, 0.99)))
    run(layers.batch_norm, params, x, state=state, train=draw(st.booleans()), momentum=momentum)


@family("layers.dropout", jit=True, **LAYER)
def fuzz_dropout(draw, run):
    x = draw(floats(tuple(draw(st.lists(st.integers(0, 3), max_size=3))), None))
    rate = draw(st.sampled_from((0.0, 0.1, 0.5, 0.9)))
    run(layers.dropout, x, rate, key=keys(draw), train=draw(st.booleans()))


@family("layers.init_residual_block", "layers.residual_block", **LAYER)
def fuzz_residual_block(draw, run):
    ndim, channels = draw(st.sampled_from((1, 2))), small(draw)
    params = run(
        layers.init_residual_block, keys(draw), channels, kernel_size=small(draw), ndim=ndim
    )
    x = draw(floats((small(draw), *(small(draw, 1, 3) for _ in range(ndim)), channels), None))
    run(layers.residual_block, params, x)


@family("layers.init_embedding", "layers.embedding", jit=True, **LAYER)
def fuzz_embedding(draw, run):
    vocab, dim = small(draw), small(draw)
    params = run(layers.init_embedding, keys(draw), vocab, dim)
    shape = tuple(draw(st.lists(st.integers(0, 2), max_size=2)))
    run(layers.embedding, params, draw(arrays(shape, np.int32, low=0, high=vocab - 1)))


@family("layers.sinusoidal_positions", jit=True, **LAYER)
def fuzz_sinusoidal_positions(draw, run):
    run(layers.sinusoidal_positions, small(draw, 1, 6), small(draw, 1, 5))


@family("layers.init_learned_positions", "layers.learned_positions", **LAYER)
def fuzz_learned_positions(draw, run):
    max_len = small(draw, 1, 4)
    params = run(layers.init_learned_positions, keys(draw), max_len, small(draw))
    run(layers.learned_positions, params, small(draw, 1, max_len))


@family("layers.causal_mask", jit=True, **LAYER)
def fuzz_causal_mask(draw, run):
    run(layers.causal_mask, small(draw, 1, 4))


@family("layers.scaled_dot_product_attention", jit=True, **LAYER)
def fuzz_scaled_dot_product_attention(draw, run):
    batch = () if draw(st.booleans()) else (small(draw, 1, 2),)
    t_q, t_k, heads, head_dim = (small(draw, 1, 2) for _ in range(4))
    dtype = draw(st.sampled_from(FLOAT_DTYPES))
    q = draw(floats((*batch, t_q, heads, head_dim), dtype))
    k = draw(floats((*batch, t_k, heads, head_dim), dtype))
    v = draw(floats((*batch, t_k, heads, head_dim), dtype))
    kwargs = {"is_causal": draw(st.booleans())}
    if draw(st.booleans()):
        kwargs["mask"] = draw(arrays((t_q, t_k), np.bool_))
    run(layers.scaled_dot_product_attention, q, k, v, **kwargs)


@family("layers.init_multi_head_attention", "layers.multi_head_attention", **LAYER)
def fuzz_multi_head_attention(draw, run):
    heads = small(draw, 1, 2)
    dim = heads * small(draw, 1, 2)
    params = run(layers.init_multi_head_attention, keys(draw), dim, heads)
    batch = () if draw(st.booleans()) else (small(draw, 1, 2),)
    x = draw(floats((*batch, small(draw), dim)))
    run(layers.multi_head_attention, params, x, num_heads=heads, is_causal=draw(st.booleans()))


@family("layers.init_transformer_block", "layers.transformer_block", **LAYER)
def fuzz_transformer_block(draw, run):
    heads = small(draw, 1, 2)
    dim = heads * small(draw, 1, 2)
    params = run(layers.init_transformer_block, keys(draw), dim, heads, small(draw, 1, 2))
    x = draw(floats((small(draw, 1, 2), small(draw, 1, 2), dim)))
    train = draw(st.booleans())
    run(
        layers.transformer_block,
        params,
        x,
        num_heads=heads,
        dropout=draw(st.sampled_from((0.0, 0.5))),
        key=keys(draw),
        train=train,
    )


def _recurrent(cell):
    init = getattr(layers, f"init_{cell}")
    seq, step = getattr(layers, cell), getattr(layers, f"{cell}_cell")

    def build(draw, run):
        d_in, hidden = small(draw, 1, 2), small(draw, 1, 2)
        params = run(init, keys(draw), d_in, hidden)
        batch = () if draw(st.booleans()) else (small(draw, 1, 2),)
        dtype = draw(st.sampled_from((np.float32, np.float16, jnp.bfloat16)))
        if draw(st.booleans()):
            run(seq, params, draw(floats((*batch, small(draw, 1, 2), d_in), dtype)))
            return
        h = draw(floats((*batch, hidden), dtype))
        state = (h, draw(floats((*batch, hidden), dtype))) if cell == "lstm" else h
        run(step, params, state, draw(floats((*batch, d_in), dtype)))

    build.__name__ = f"fuzz_{cell}"
    return family(f"layers.init_{cell}", f"layers.{cell}", f"layers.{cell}_cell", **LAYER)(build)


for _cell in ("rnn", "gru", "lstm"):
    _recurrent(_cell)


# ----------------------------------------------------------------------------------------------
# Models: Config, init, apply (cfg= always a keyword) and the helpers each module exports.

MODEL = {"limit": 10.0, "limit16": 10.0}


def _info(shape, classes, task="classification"):
    return types.SimpleNamespace(input_shape=shape, num_classes=classes, task=task)


def _model_chain(draw, run, module, fields, x_of):
    """Config(**fields) -> init -> apply(params, x, cfg=cfg), then param_count."""
    cfg = run(module.Config, **fields)
    params = run(module.init, keys(draw), cfg)
    kwargs = {"cfg": cfg, "train": draw(st.booleans()), "key": keys(draw)}
    if hasattr(module, "init_state"):
        kwargs["state"] = run(module.init_state, cfg)
    run(module.apply, params, x_of(cfg), **kwargs)
    run(module.param_count, params)


@family(
    "models.mlp.Config",
    "models.mlp.init",
    "models.mlp.init_state",
    "models.mlp.apply",
    "models.mlp.param_count",
    "models.mlp.config_for",
    **MODEL,
)
def fuzz_model_mlp(draw, run):
    if draw(st.integers(0, 4)) == 0:
        run(mlp.config_for, _info((small(draw), 2), small(draw)), hidden=(small(draw),))
        return
    fields = {
        "input_dim": small(draw, 1, 4),
        "hidden": tuple(draw(st.lists(st.integers(1, 3), max_size=2))),
        "num_classes": small(draw),
        "activation": draw(st.sampled_from(activations.NAMES)),
        "dropout": draw(st.sampled_from((0.0, 0.5))),
        "remat": draw(st.booleans()),
    }
    _model_chain(
        draw, run, mlp, fields, lambda cfg: draw(floats((small(draw), cfg.input_dim), None))
    )


@family(
    "models.cnn.Config",
    "models.cnn.init",
    "models.cnn.init_state",
    "models.cnn.apply",
    "models.cnn.param_count",
    "models.cnn.config_for",
    **MODEL,
)
def fuzz_model_cnn(draw, run):
    shape = draw(st.sampled_from(((4,), (3, 3), (3, 3, 2))))
    if draw(st.integers(0, 4)) == 0:
        run(cnn.config_for, _info(shape, small(draw)), channels=(2,))
        return
    fields = {
        "input_shape": shape,
        "num_classes": small(draw),
        "channels": (small(draw, 1, 2),),
        "kernel_size": small(draw, 1, 2),
        "hidden": small(draw, 1, 2),
        "pool": small(draw, 1, 2),
        "dropout": draw(st.sampled_from((0.0, 0.5))),
        "batch_norm": draw(st.booleans()),
    }
    _model_chain(
        draw, run, cnn, fields, lambda cfg: draw(floats((small(draw), *cfg.input_shape), None))
    )


@family(
    "models.rnn.Config",
    "models.rnn.init",
    "models.rnn.init_state",
    "models.rnn.apply",
    "models.rnn.param_count",
    "models.rnn.config_for",
    "models.rnn.generate",
    **MODEL,
)
def fuzz_model_rnn(draw, run):
    shape = draw(st.sampled_from(((4,), (3, 2))))
    choice = draw(st.integers(0, 5))
    if choice == 0:
        run(rnn.config_for, _info(shape, small(draw)), hidden=2)
        return
    if choice == 1:  # the character language model and its sampler
        cfg = run(
            rnn.Config, input_shape=(small(draw),), num_classes=small(draw, 2, 4),
            cell=draw(st.sampled_from(("gru", "lstm", "rnn"))), hidden=(small(draw, 1, 3),),
            task="language_model", embed_dim=small(draw, 1, 3),
        )  # fmt: skip
        params = run(rnn.init, keys(draw), cfg)
        prompt = draw(arrays((small(draw, 1, 3),), np.int32, low=0, high=cfg.num_classes - 1))
        run(rnn.apply, params, prompt[None], cfg=cfg)
        run(
            rnn.generate, params, prompt, cfg=cfg, key=keys(draw), length=small(draw, 0, 2),
            temperature=draw(st.sampled_from((0.0, 0.5, 1.0))),
        )  # fmt: skip
        return
    fields = {
        "input_shape": shape,
        "num_classes": small(draw),
        "cell": draw(st.sampled_from(("gru", "lstm", "rnn"))),
        "hidden": tuple(draw(st.lists(st.integers(1, 3), min_size=1, max_size=2))),
        "chunk": 1 if len(shape) == 2 else draw(st.sampled_from((1, 2))),
        "dropout": draw(st.sampled_from((0.0, 0.5))),
    }
    _model_chain(
        draw, run, rnn, fields, lambda cfg: draw(floats((small(draw), *cfg.input_shape), None))
    )


@family(
    "models.transformer.Config",
    "models.transformer.init",
    "models.transformer.init_state",
    "models.transformer.apply",
    "models.transformer.param_count",
    "models.transformer.config_for",
    "models.transformer.generate",
    **MODEL,
)
def fuzz_model_transformer(draw, run):
    choice = draw(st.integers(0, 5))
    if choice == 0:
        info = _info((small(draw),), small(draw, 2, 4), task="language_model")
        run(transformer.config_for, info, dim=4, num_heads=2)
        return
    heads = small(draw, 1, 2)
    fields = {
        "vocab_size": small(draw, 2, 4),
        "max_len": small(draw, 1, 3),
        "dim": 2 * heads,
        "num_heads": heads,
        "num_layers": small(draw, 1, 2),
        "mlp_ratio": 1,
        "dropout": draw(st.sampled_from((0.0, 0.5))),
        "task": draw(st.sampled_from(transformer.TASKS)),
        "num_classes": small(draw, 1, 3),
        "positional": draw(st.sampled_from(transformer.POSITIONALS)),
        "remat": draw(st.booleans()),
    }
    if choice == 1:
        cfg = run(transformer.Config, **{**fields, "task": "language_model"})
        params = run(transformer.init, keys(draw), cfg)
        prompt = draw(arrays((small(draw, 1, 2),), np.int32, low=0, high=cfg.vocab_size - 1))
        temperature = draw(st.sampled_from((0.0, 0.5, 1.0)))
        run(
            transformer.generate,
            params,
            prompt,
            cfg=cfg,
            key=keys(draw),
            length=small(draw, 0, 2),
            temperature=temperature,
        )
        return

    def ids(cfg):
        shape = (small(draw, 1, 2), small(draw, 1, cfg.max_len))
        return draw(arrays(shape, np.int32, low=0, high=cfg.vocab_size - 1))

    _model_chain(draw, run, transformer, fields, ids)


# ----------------------------------------------------------------------------------------------
# Data: jaxnn.data.load with fuzzed names and options.

SYNTHETIC = ("synthetic:moons", "synthetic:spirals", "synthetic:xor", "synthetic:sine")
HEAVY = ("mnist1d", "mnist5k", "pydoc_text")  # loaded only with an option that must be refused
OPTION_VALUES = {
    "n": (40, 60, 0, -5, 2.5, "abc", None, True, NAN),
    "noise": (0.0, 0.1, -1.0, NAN, INF, "abc", None),
    "arms": (2, 3, 0, 1, -2, 2.5, "abc"),
    "val_fraction": (0.1, 0.3, 0.0, 1.0, 1.5, -0.1, NAN, "abc", None),
    "test_fraction": (0.2, 0.0, 1.0, 2.0, NAN, "abc", None),
    "seq_len": (0, -1, "abc", 2.5, None),
    "stride": (0, -1, "abc", 2.5),
    "tokenizer": ("bogus", 3, None),
    "vocab_size": (0, -1, "abc"),
    "disk_cache": ("abc", 2, None),
    "bogus_option": (1,),
}


@family("data.load")
def fuzz_load(draw, run):
    name = draw(
        st.one_of(
            st.sampled_from(SYNTHETIC + ("digits",)),
            st.sampled_from(("", "mnist", "synthetic:", "synthetic:circles", "tfds:", "csv:")),
            st.text(max_size=6),
            st.sampled_from((None, 3, b"digits", ["digits"])),
        )
    )
    if name in HEAVY:
        name = "digits"
    keys_ = draw(st.lists(st.sampled_from(sorted(OPTION_VALUES)), max_size=3, unique=True))
    options = {k: draw(st.sampled_from(OPTION_VALUES[k])) for k in keys_}
    seed = draw(st.sampled_from((0, 1, 0, -1, 2.5, "1", None, 2**70)))
    if draw(st.integers(0, 9)) == 0:  # a heavy dataset with one option it must refuse up front
        name = draw(st.sampled_from(HEAVY))
        options = {draw(st.sampled_from(("val_fraction", "seq_len", "bogus_option"))): "abc"}
    run(load, name, seed=seed, **options)


# ----------------------------------------------------------------------------------------------
# Tests.

MODULES = {
    "activations": activations,
    "losses": losses,
    "layers": layers,
    "models.mlp": mlp,
    "models.cnn": cnn,
    "models.rnn": rnn,
    "models.transformer": transformer,
}


def _public_callables() -> set[str]:
    names = {"data.load"}
    for prefix, module in MODULES.items():
        for name in module.__all__:
            if callable(getattr(module, name)):
                names.add(f"{prefix}.{name}")
    return names


def test_every_public_function_has_a_fuzz_family():
    covered = {name for fam in FAMILIES.values() for name in fam.covers}
    missing = sorted(_public_callables() - covered)
    assert not missing, f"public functions without a fuzz family: {missing}"
    unknown = sorted(covered - _public_callables())
    assert not unknown, f"fuzz families cover names that are not public: {unknown}"


@pytest.mark.parametrize(
    "profile",
    [pytest.param("default", id="30"), pytest.param("slow", id="300", marks=pytest.mark.slow)],
)
@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_fuzz_returns_finite_or_raises_documented_value_error(name, profile):
    fam = FAMILIES[name]

    @PROFILES[profile]
    @given(data=st.data())
    def case(data):
        runner = Runner(data.draw, fam)
        try:
            fam.build(data.draw, runner)
        except Stop:
            pass

    case()


# ----------------------------------------------------------------------------------------------
# The inputs the fuzz found, kept as plain regression tests.

KEY = jax.random.key(0)


def _gru_params_without_input_w():
    params = layers.init_gru(KEY, 3, 1)
    return {"input": {"b": params["input"]["b"]}, "hidden": params["hidden"]}


FOUND_VALUE_ERRORS = {
    "load_n_abc": lambda: load("synthetic:moons", n="abc"),
    "load_val_fraction_none": lambda: load("synthetic:xor", val_fraction=None),
    "load_noise_nan": lambda: load("synthetic:moons", noise=NAN),
    "load_spirals_arms_2_5": lambda: load("synthetic:spirals", arms=2.5),
    "load_mnist1d_val_fraction_abc": lambda: load("mnist1d", val_fraction="abc"),
    "relu_of_a_string": lambda: activations.relu(""),
    "sigmoid_of_bool": lambda: activations.sigmoid(jnp.array([True])),
    "softmax_of_bool": lambda: activations.softmax(np.array([True])),
    "softmax_over_an_empty_axis": lambda: activations.softmax(jnp.zeros((2, 0))),
    "log_softmax_over_an_empty_axis": lambda: activations.log_softmax(np.zeros((0,))),
    "get_of_a_dict": lambda: activations.get({}),
    "leaky_relu_slope_string": lambda: activations.leaky_relu(jnp.ones(2), negative_slope="a"),
    "cross_entropy_smoothing_list": lambda: losses.cross_entropy(
        jnp.zeros((2, 2)), jnp.array([1, 0]), label_smoothing=[1]
    ),
    "cross_entropy_mean_of_no_examples": lambda: losses.cross_entropy(
        jnp.zeros((0, 3), jnp.float16), jnp.zeros((0,), jnp.int32)
    ),
    "accuracy_of_no_examples": lambda: losses.accuracy(jnp.zeros((0, 3, 2)), jnp.zeros((0, 3, 2))),
    "binary_cross_entropy_of_no_examples": lambda: losses.binary_cross_entropy(
        np.zeros((0, 2, 2), np.float32), np.zeros((0, 2, 2), np.int32)
    ),
    "mse_of_empty_examples": lambda: losses.mse(jnp.zeros((3, 0)), jnp.zeros((3, 0))),
    "l2_penalty_weight_decay_empty_string": lambda: losses.l2_penalty({"w": jnp.ones(2)}, ""),
    "init_dense_key_none": lambda: layers.init_dense(None, 1, 1),
    "init_conv1d_key_of_three_words": lambda: layers.init_conv1d(np.zeros(3, np.uint32), 3, 3, 2),
    "init_embedding_key_zero": lambda: layers.init_embedding(0, 3, 3),
    "init_gru_key_none": lambda: layers.init_gru(None, 1, 1),
    "causal_mask_of_10_to_30": lambda: layers.causal_mask(10**30),
    "conv2d_stride_10_to_30": lambda: layers.conv2d(
        layers.init_conv2d(KEY, 2, 2, 1), jnp.ones((1, 3, 3, 2)), stride=10**30
    ),
    "gru_cell_params_without_input_w": lambda: layers.gru_cell(
        _gru_params_without_input_w(), jnp.ones((1,)), jnp.ones((3,))
    ),
    "avg_pool1d_padding_as_large_as_window": lambda: layers.avg_pool1d(
        jnp.ones((1, 3, 3)), 1, None, 1
    ),
    "max_pool2d_reshape_with_padding": lambda: layers.max_pool2d(
        jnp.ones((1, 3, 4, 3)), 2, 2, 1, method="reshape"
    ),
    "lstm_cell_state_not_a_pair": lambda: layers.lstm_cell(
        layers.init_lstm(KEY, 2, 2), jnp.ones((2,)), jnp.ones((2,))
    ),
    "batch_norm_training_on_an_empty_batch": lambda: layers.batch_norm(
        layers.init_batch_norm(2),
        jnp.ones((0, 2)),
        state=layers.init_batch_norm_state(2),
        train=True,
    ),
}


@pytest.mark.parametrize("case", sorted(FOUND_VALUE_ERRORS))
def test_found_input_raises_a_value_error_naming_the_function(case):
    with pytest.raises(ValueError) as info:
        FOUND_VALUE_ERRORS[case]()
    assert_documented(info.value, case)


def test_found_conv_on_float16_input_with_float32_kernel_returns_finite_values():
    params = layers.init_conv1d(KEY, 1, 3, 3)
    y = layers.conv1d(params, jnp.ones((1, 4, 3), jnp.float16))
    assert y.shape == (1, 4, 3) and np.isfinite(np.asarray(y, np.float32)).all()


def test_found_gru_with_float16_h0_and_float32_params_runs():
    params = layers.init_gru(KEY, 2, 3)
    out, h = layers.gru(params, jnp.ones((1, 4, 2)), h0=jnp.zeros((1, 3), jnp.float16))
    assert out.shape == (1, 4, 3) and h.dtype == jnp.float32


def test_found_leaky_relu_with_an_int_slope_beyond_int64_is_finite():
    y = activations.leaky_relu(jnp.array([-1.0, 1.0]), negative_slope=10**30)
    np.testing.assert_allclose(np.asarray(y), [-1e30, 1.0], rtol=1e-6)


# Bugs in modules this suite does not fix (models are being rewritten; attention has its own
# owner). Each is strict: once fixed it fails, and its KNOWN_BUGS entry above should go.
def _mlp_apply(cfg_value, *, key=KEY):
    cfg = mlp.Config(input_dim=2, hidden=(2,), dropout=0.5)
    return mlp.apply(
        mlp.init(KEY, cfg), jnp.ones((1, 2)), cfg=cfg_value or cfg, train=True, key=key
    )


def _generate(temperature):
    cfg = transformer.Config(vocab_size=5, max_len=4, dim=4, num_heads=1, num_layers=1)
    params = transformer.init(KEY, cfg)
    return transformer.generate(
        params, jnp.array([1, 2]), cfg=cfg, key=KEY, length=2, temperature=temperature
    )


# Found by the fuzz in the models and attention, fixed there; kept as regression tests.
FOUND_IN_MODELS = {
    "mlp_init_key_none": lambda: mlp.init(None, mlp.Config()),
    "cnn_init_key_zero": lambda: cnn.init(0, cnn.Config()),
    "rnn_init_key_string": lambda: rnn.init("key", rnn.Config()),
    "transformer_init_key_of_three_words": lambda: transformer.init(
        np.zeros(3, np.uint32), transformer.Config()
    ),
    "mlp_config_hidden_none": lambda: mlp.Config(hidden=None),
    "cnn_config_input_shape_none": lambda: cnn.Config(input_shape=None),
    "cnn_config_channels_2_5": lambda: cnn.Config(channels=2.5),
    "rnn_config_input_shape_none": lambda: rnn.Config(input_shape=None),
    "rnn_config_cell_list": lambda: rnn.Config(cell=[1]),
    "mlp_apply_cfg_true": lambda: _mlp_apply(True),
    "mlp_apply_dropout_key_zero": lambda: _mlp_apply(None, key=0),
    "transformer_generate_temperature_nan": lambda: _generate(NAN),
    "transformer_apply_block_without_attn": lambda: transformer.apply(
        {
            **(p := transformer.init(KEY, c := transformer.Config(dim=4, num_heads=1))),
            "block_0": {k: v for k, v in p["block_0"].items() if k != "attn"},
        },
        jnp.ones((1, 2), jnp.int32),
        cfg=c,
    ),
    "transformer_generate_key_none": lambda: transformer.generate(
        transformer.init(KEY, c := transformer.Config(dim=4, num_heads=1, num_layers=1)),
        jnp.array([1]),
        cfg=c,
        key=None,
        length=1,
    ),
    "transformer_generate_cfg_none": lambda: transformer.generate(
        {}, jnp.array([1]), cfg=None, key=KEY, length=1
    ),
    "init_multi_head_attention_key_none": lambda: layers.init_multi_head_attention(None, 4, 2),
    "init_transformer_block_key_zero": lambda: layers.init_transformer_block(0, 4, 2),
    "transformer_block_dropout_key_zero": lambda: layers.transformer_block(
        layers.init_transformer_block(KEY, 2, 1),
        jnp.ones((1, 2, 2)),
        num_heads=1,
        dropout=0.5,
        key=0,
        train=True,
    ),
    "multi_head_attention_q_w_none": lambda: layers.multi_head_attention(
        {**(p := layers.init_multi_head_attention(KEY, 2, 1)), "q": {**p["q"], "w": None}},
        jnp.ones((3, 2)),
        num_heads=1,
    ),
}


@pytest.mark.parametrize("case", sorted(FOUND_IN_MODELS))
def test_found_model_input_raises_a_value_error(case):
    with pytest.raises(ValueError):
        FOUND_IN_MODELS[case]()


def test_found_layer_norm_with_eps_1e_45_raises_instead_of_returning_nan():
    # 1e-45 is a float32 subnormal; flushed to zero it made rsqrt(0 + 0) = inf and 0 * inf = NaN.
    with pytest.raises(ValueError, match=r"layer_norm: expected eps > 0, at least"):
        layers.layer_norm(layers.init_layer_norm(1), np.zeros((1,), np.float32), eps=1e-45)


def test_found_layer_norm_with_list_params_uses_them_as_arrays():
    y = layers.layer_norm({"scale": [2.0], "bias": [1.0]}, jnp.array([[3.0]]))
    np.testing.assert_allclose(np.asarray(y), [[1.0]])
