"""The layers jaxnn and Flax both have, as ``flax.linen`` variables and ``flax.nnx`` state: the
same outputs both ways for every layer, the bits back after a round trip, refusals by name."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnn import layers, weights

TOLERANCE = 1e-5  # float32


def _random_like(tree, seed, positive=()):
    """Arrays of the shapes and dtypes of ``tree`` (arrays or ``jax.ShapeDtypeStruct``), drawn
    with NumPy (no compile): float leaves ``N(0, 0.5^2)``, those named in ``positive``
    ``exp(N(0, 0.3^2))``."""
    rng = np.random.default_rng(seed)

    def draw(path, a):
        if not jnp.issubdtype(a.dtype, jnp.floating):
            return a
        if getattr(path[-1], "key", None) in positive:
            return jnp.asarray(np.exp(0.3 * rng.standard_normal(a.shape)), a.dtype)
        return jnp.asarray(0.5 * rng.standard_normal(a.shape), a.dtype)

    return jax.tree_util.tree_map_with_path(draw, tree)


def _params(init, seed=5, positive=()):
    """Random params of the shapes ``init()`` makes."""
    return _random_like(jax.eval_shape(init), seed, positive)


def _jaxnn_case(layer):
    """``(params, state, apply(params, state, x), x, flax_kwargs)`` of one jaxnn layer."""
    key = jax.random.key(3)
    rng = np.random.default_rng(4)
    x = jnp.asarray(rng.standard_normal((2, 5, 6, 2)), jnp.float32)  # (N, H, W, C)
    if layer == "dense":
        p = _params(lambda: layers.init_dense(key, 2, 3))
        return p, None, lambda p, s, x: layers.dense(p, x), x, {}
    if layer == "conv":
        p = _params(lambda: layers.init_conv2d(key, 3, 2, 4))
        return p, None, lambda p, s, x: layers.conv2d(p, x), x, {}
    if layer == "conv_1d":
        p = _params(lambda: layers.init_conv1d(key, 3, 2, 4))
        return p, None, lambda p, s, x: layers.conv1d(p, x), x[:, 0], {}  # (N, W, C)
    if layer == "layer_norm":
        p = _params(lambda: layers.init_layer_norm(6))
        return p, None, lambda p, s, x: layers.layer_norm(p, x), x[..., 0], {}  # (N, H, W)
    if layer == "batch_norm":
        p = _params(lambda: layers.init_batch_norm(2))
        s = _params(lambda: layers.init_batch_norm_state(2), 6, positive=("var",))
        apply = lambda p, s, x: layers.batch_norm(p, x, state=s, train=False)[0]
        return p, s, apply, x, {}
    if layer == "embedding":
        p = _params(lambda: layers.init_embedding(key, 7, 3))
        ids = jnp.asarray(rng.integers(0, 7, (2, 5)), jnp.int32)
        return p, None, lambda p, s, x: layers.embedding(p, x), ids, {}
    if layer == "attention":
        p = _params(lambda: layers.init_multi_head_attention(key, 8, 2))
        seq = jnp.asarray(rng.standard_normal((2, 5, 8)), jnp.float32)  # (B, T, D)
        apply = lambda p, s, x: layers.multi_head_attention(p, x, num_heads=2, is_causal=True)
        return p, None, apply, seq, {"num_heads": 2}
    raise AssertionError(layer)


CASES = ["dense", "conv", "conv_1d", "layer_norm", "batch_norm", "embedding", "attention"]
# LayerNorm is compared with Flax's two-pass variance, jaxnn's formula: the default one-pass
# E[x^2] - E[x]^2 differs by rounding (4e-5 on a row of nearly equal values).
KIND = {"conv_1d": "conv"}  # the jaxnn layer kind of each case


def _linen(case):
    nn = pytest.importorskip("flax.linen")
    causal = nn.make_causal_mask(jnp.zeros((2, 5)))
    modules = {
        "dense": (nn.Dense(3), {}),
        "conv": (nn.Conv(4, (3, 3), padding="SAME"), {}),
        "conv_1d": (nn.Conv(4, (3,), padding="SAME"), {}),
        "layer_norm": (nn.LayerNorm(epsilon=1e-5, use_fast_variance=False), {}),
        "batch_norm": (nn.BatchNorm(use_running_average=True, epsilon=1e-5), {}),
        "embedding": (nn.Embed(7, 3), {}),
        "attention": (nn.MultiHeadDotProductAttention(2, qkv_features=8), {"mask": causal}),
    }
    return modules[case]


def _nnx(case):
    """The nnx module (shapes only, no random init: the tests load its values) and its call."""
    nnx = pytest.importorskip("flax.nnx")
    causal = jnp.tril(jnp.ones((1, 1, 5, 5), bool))
    modules = {
        "dense": (lambda r: nnx.Linear(2, 3, rngs=r), {}),
        "conv": (lambda r: nnx.Conv(2, 4, (3, 3), padding="SAME", rngs=r), {}),
        "conv_1d": (lambda r: nnx.Conv(2, 4, (3,), padding="SAME", rngs=r), {}),
        "layer_norm": (
            lambda r: nnx.LayerNorm(6, epsilon=1e-5, use_fast_variance=False, rngs=r),
            {},
        ),
        "batch_norm": (
            lambda r: nnx.BatchNorm(2, use_running_average=True, epsilon=1e-5, rngs=r),
            {},
        ),
        "embedding": (lambda r: nnx.Embed(7, 3, rngs=r), {}),
        "attention": (
            lambda r: nnx.MultiHeadAttention(2, 8, qkv_features=8, decode=False, rngs=r),
            {"mask": causal},
        ),
    }
    make, call = modules[case]
    return nnx, (nnx.eval_shape(lambda: make(nnx.Rngs(0))), call)


def _close(got, want):
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=0, atol=TOLERANCE)


def _same_bits(tree_a, tree_b):
    assert jax.tree.structure(tree_a) == jax.tree.structure(tree_b)
    for a, b in zip(jax.tree.leaves(tree_a), jax.tree.leaves(tree_b), strict=True):
        assert np.asarray(a).dtype == np.asarray(b).dtype
        assert np.asarray(a).tobytes() == np.asarray(b).tobytes()


@pytest.mark.parametrize("case", CASES)
def test_a_linen_module_computes_the_jaxnn_layer_both_ways(case):
    module, call = _linen(case)
    layer = KIND.get(case, case)
    params, state, apply, x, kwargs = _jaxnn_case(case)
    variables = weights.to_linen(layer, params, state, **kwargs)
    _close(module.apply(variables, x, **call), apply(params, state, x))
    _same_bits((params, state or {}), weights.from_linen(layer, variables))
    flax_variables = _params(lambda: module.init(jax.random.key(1), x), 7, positive=("var",))
    flax_params, flax_state = weights.from_linen(layer, flax_variables)
    _close(apply(flax_params, flax_state, x), module.apply(flax_variables, x, **call))
    _same_bits(flax_variables, weights.to_linen(layer, flax_params, flax_state, **kwargs))


@pytest.mark.parametrize("case", CASES)
def test_an_nnx_module_computes_the_jaxnn_layer_both_ways(case):
    nnx, (module, call) = _nnx(case)
    layer = KIND.get(case, case)
    params, state, apply, x, kwargs = _jaxnn_case(case)
    module_state = nnx.state(module)
    nnx.replace_by_pure_dict(module_state, weights.to_nnx(layer, params, state, **kwargs))
    nnx.update(module, module_state)
    _close(module(x, **call), apply(params, state, x))
    _same_bits((params, state or {}), weights.from_nnx(layer, nnx.to_pure_dict(module_state)))
    pure = _random_like(nnx.to_pure_dict(nnx.state(module)), 7, positive=("var",))
    nnx.replace_by_pure_dict(module_state, pure)
    nnx.update(module, module_state)
    flax_params, flax_state = weights.from_nnx(layer, pure)
    _close(apply(flax_params, flax_state, x), module(x, **call))
    _same_bits(pure, weights.to_nnx(layer, flax_params, flax_state, **kwargs))


def test_attention_heads_are_flax_kernels_d_h_dh_and_the_output_h_dh_d():
    params = layers.init_multi_head_attention(jax.random.key(0), 8, 2)
    variables = weights.to_linen("attention", params, num_heads=2)["params"]
    assert variables["query"]["kernel"].shape == (8, 2, 4)
    assert variables["value"]["bias"].shape == (2, 4)
    assert variables["out"]["kernel"].shape == (2, 4, 8)
    np.testing.assert_array_equal(variables["key"]["kernel"][:, 1, :], params["k"]["w"][:, 4:])
    np.testing.assert_array_equal(variables["out"]["kernel"][1], params["out"]["w"][4:])


@pytest.mark.parametrize(
    "call, expect",
    [
        (
            lambda: weights.to_linen("dense", {"w": np.zeros((2, 3))}),
            r"to_linen: expected dense params with keys \['b', 'w'\], got \['w'\]",
        ),
        (
            lambda: weights.to_linen("pool", {}),
            r"to_linen: expected a layer in \('dense', 'conv', .*got 'pool'",
        ),
        (
            lambda: weights.to_nnx("batch_norm", layers.init_batch_norm(2)),
            r"to_nnx: expected batch_norm state with keys \['mean', 'var'\], got \[\]",
        ),
        (
            lambda: weights.to_linen(
                "attention", layers.init_multi_head_attention(jax.random.key(0), 8, 2)
            ),
            "expected num_heads as a positive int for attention, got None",
        ),
        (
            lambda: weights.to_linen(
                "attention", layers.init_multi_head_attention(jax.random.key(0), 8, 2), num_heads=3
            ),
            "expected num_heads to divide the width 8, got 3",
        ),
        (
            lambda: weights.from_linen("dense", {"params": {"kernel": np.zeros((2, 3))}}),
            r"from_linen: expected dense params with keys \['bias', 'kernel'\], got \['kernel'\]",
        ),
        (
            lambda: weights.from_linen("batch_norm", {"params": {}}),
            r"expected batch_norm variables with keys \['batch_stats', 'params'\], got \['par",
        ),
        (
            lambda: weights.from_nnx("embedding", {"table": np.zeros((3, 2))}),
            r"from_nnx: expected embedding params with keys \['embedding'\], got \['table'\]",
        ),
    ],
    ids=["keys", "layer", "state", "no-heads", "heads", "from-keys", "collections", "nnx-keys"],
)
def test_a_tree_of_another_layer_is_refused_naming_what_differs(call, expect):
    with pytest.raises(ValueError, match=expect):
        call()
