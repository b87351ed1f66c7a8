"""Tests for jaxnn.layers.residual: the block is relu(x + conv(relu(conv(x)))) in 1-D and 2-D."""

import flax.linen as fnn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnn.layers.residual import init_residual_block, residual_block

RNG = np.random.default_rng(0)


def _randn(*shape):
    return jnp.asarray(RNG.standard_normal(shape), jnp.float32)


def _flax_conv(p, x):
    layer = fnn.Conv(p["w"].shape[-1], kernel_size=p["w"].shape[:-2], padding="SAME")
    return layer.apply({"params": {"kernel": p["w"], "bias": p["b"]}}, x)


def _with_random_bias(params):
    return {name: {"w": p["w"], "b": _randn(*p["b"].shape)} for name, p in params.items()}


@pytest.mark.parametrize("ndim,shape", [(2, (2, 6, 5, 4)), (1, (3, 9, 4))])
def test_residual_block_equals_the_formula_with_flax_convolutions(transform, ndim, shape):
    params = _with_random_bias(init_residual_block(jax.random.key(0), 4, ndim=ndim))
    x = _randn(*shape)
    y = transform(residual_block)(params, x)
    h = jax.nn.relu(_flax_conv(params["conv1"], x))
    ref = jax.nn.relu(x + _flax_conv(params["conv2"], h))
    assert y.shape == x.shape
    np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-5)


def test_residual_block_with_zero_branch_is_relu_of_its_input(transform):
    params = init_residual_block(jax.random.key(1), 3, kernel_size=5)
    params["conv2"] = jax.tree_util.tree_map(jnp.zeros_like, params["conv2"])
    x = _randn(2, 7, 7, 3)
    np.testing.assert_array_equal(transform(residual_block)(params, x), jax.nn.relu(x))


def test_gradient_reaches_the_input_through_the_skip_path_when_the_branch_is_dead():
    params = init_residual_block(jax.random.key(2), 2, ndim=1)
    dead = jax.tree_util.tree_map(jnp.zeros_like, params)
    x = jnp.abs(_randn(1, 6, 2)) + 0.1  # positive, so the final relu passes everything
    g = jax.grad(lambda x: residual_block(dead, x).sum())(x)
    np.testing.assert_array_equal(g, jnp.ones_like(x))
    plain = lambda x: jax.nn.relu(  # the same two convolutions without the skip connection
        jax.lax.conv_general_dilated(
            x, dead["conv2"]["w"], (1,), "SAME", dimension_numbers=("NWC", "WIO", "NWC")
        )
    )
    np.testing.assert_array_equal(jax.grad(lambda x: plain(x).sum())(x), jnp.zeros_like(x))


def test_residual_block_vmap_of_single_examples_equals_batched_call(transform):
    params = init_residual_block(jax.random.key(3), 3)
    x = _randn(4, 5, 5, 3)
    single = jax.vmap(lambda xi: residual_block(params, xi[None])[0])
    np.testing.assert_allclose(
        transform(single)(x), residual_block(params, x), rtol=1e-6, atol=1e-6
    )


def test_init_residual_block_param_count_is_two_square_convolutions():
    params = init_residual_block(jax.random.key(4), 8, kernel_size=3, ndim=2)
    assert sum(a.size for a in jax.tree_util.tree_leaves(params)) == 2 * (3 * 3 * 8 * 8 + 8)
    assert params["conv1"]["w"].shape == (3, 3, 8, 8)
    assert init_residual_block(jax.random.key(4), 8, ndim=1)["conv2"]["w"].shape == (3, 8, 8)


P = init_residual_block(jax.random.key(5), 2)


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: residual_block(P, jnp.zeros((1, 4, 4, 3))), "expected input with 2 channels"),
        (lambda: residual_block(P, jnp.zeros((4, 4, 2))), r"rank 4 \(N, H, W, C\)"),
        (lambda: residual_block({"conv1": P["conv1"]}, jnp.zeros((1, 4, 4, 2))), "keys"),
        (
            lambda: residual_block(
                {"conv1": P["conv1"], "conv2": {"w": jnp.zeros((3, 3, 2, 5)), "b": jnp.zeros(5)}},
                jnp.zeros((1, 4, 4, 2)),
            ),
            r"conv2 kernel \(k, C, C\)",
        ),
        (lambda: init_residual_block(jax.random.key(0), 4, ndim=3), "ndim 1 or 2"),
        (lambda: init_residual_block(jax.random.key(0), 0), "dim"),
        (lambda: init_residual_block(jax.random.key(0), 4, kernel_size=0), "kernel_size"),
    ],
)
def test_bad_input_raises_value_error_naming_expected_and_given(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def _residual_case():
    rng = np.random.default_rng(1)
    params = jax.tree_util.tree_map(
        lambda a: jnp.asarray(rng.standard_normal(a.shape), jnp.float64),
        init_residual_block(jax.random.key(6), 2, kernel_size=3, ndim=1),
    )
    return residual_block, (params, jnp.asarray(rng.standard_normal((2, 5, 2)), jnp.float64))


GRAD_CASES = {"jaxnn.layers.residual.residual_block": _residual_case}
