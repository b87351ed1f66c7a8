import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnn import activations as A

# (ours, jax.nn twin): each pair must agree on every input.
TWINS = {
    "relu": (A.relu, jax.nn.relu),
    "leaky_relu": (A.leaky_relu, jax.nn.leaky_relu),
    "leaky_relu_0.2": (
        functools.partial(A.leaky_relu, negative_slope=0.2),
        functools.partial(jax.nn.leaky_relu, negative_slope=0.2),
    ),
    "gelu_exact": (A.gelu, functools.partial(jax.nn.gelu, approximate=False)),
    "gelu_tanh": (
        functools.partial(A.gelu, approximate=True),
        functools.partial(jax.nn.gelu, approximate=True),
    ),
    "tanh": (A.tanh, jax.nn.tanh),
    "sigmoid": (A.sigmoid, jax.nn.sigmoid),
    "softmax": (A.softmax, jax.nn.softmax),
    "log_softmax": (A.log_softmax, jax.nn.log_softmax),
    "identity": (A.identity, lambda x: x),
}


def _x(shape=(4, 5), seed=0, scale=3.0, dtype=np.float32):
    return jnp.asarray(scale * np.random.default_rng(seed).standard_normal(shape), dtype)


def _away_from_zero(shape, seed):
    """Inputs with |x| >= 0.1, so piecewise functions are smooth around every one of them."""
    x = np.random.default_rng(seed).standard_normal(shape)
    return jnp.asarray(np.sign(x) * (0.1 + np.abs(x)), jnp.float64)


def _case(fn, shape=(3, 4), kink_free=False, seed=0):
    def make():
        x = _away_from_zero(shape, seed) if kink_free else _x(shape, seed, 1.5, np.float64)
        return fn, (x,)

    return make


GRAD_CASES = {
    "jaxnn.activations.relu": _case(A.relu, kink_free=True),
    "jaxnn.activations.leaky_relu": _case(
        functools.partial(A.leaky_relu, negative_slope=0.1), kink_free=True
    ),
    "jaxnn.activations.gelu": _case(lambda x: jnp.stack([A.gelu(x), A.gelu(x, approximate=True)])),
    "jaxnn.activations.tanh": _case(A.tanh),
    "jaxnn.activations.sigmoid": _case(A.sigmoid),
    "jaxnn.activations.softmax": _case(lambda x: jnp.stack([A.softmax(x), A.softmax(x, 0)])),
    "jaxnn.activations.log_softmax": _case(
        lambda x: jnp.stack([A.log_softmax(x), A.log_softmax(x, axis=0)])
    ),
    "jaxnn.activations.identity": _case(A.identity, shape=(2, 3)),
}

NOT_DIFFERENTIABLE = {"jaxnn.activations.get": "returns a function, not an array"}


@pytest.mark.parametrize("name", sorted(TWINS))
def test_activation_equals_jax_nn_twin(name, transform):
    ours, theirs = TWINS[name]
    x = _x()
    np.testing.assert_allclose(transform(ours)(x), theirs(x), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", ["relu", "gelu_exact", "sigmoid", "softmax", "log_softmax"])
def test_vmap_of_unbatched_call_equals_batched_call(name):
    ours, _ = TWINS[name]
    x = _x((3, 4, 5))
    np.testing.assert_allclose(jax.vmap(ours)(x), ours(x), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("name", ["relu", "leaky_relu", "gelu_exact", "tanh", "sigmoid"])
def test_gradient_equals_jax_nn_gradient_away_from_kinks(name):
    ours, theirs = TWINS[name]
    x = _x((7,), seed=3) + 0.05  # no exact zeros
    g_ours = jax.grad(lambda v: jnp.sum(ours(v)))(x)
    g_theirs = jax.grad(lambda v: jnp.sum(theirs(v)))(x)
    np.testing.assert_allclose(g_ours, g_theirs, rtol=1e-6, atol=1e-7)


def test_relu_derivative_at_zero_is_pinned_to_zero_like_jax_nn(transform):
    g = transform(jax.grad(A.relu))(0.0)
    assert float(g) == 0.0 == float(jax.grad(jax.nn.relu)(0.0))


def test_relu_derivative_is_one_for_positive_and_zero_for_negative():
    g = jax.vmap(jax.grad(A.relu))(jnp.array([-2.0, -1e-3, 1e-3, 2.0]))
    assert g.tolist() == [0.0, 0.0, 1.0, 1.0]


def test_leaky_relu_derivative_at_zero_is_one_like_jax_nn():
    assert float(jax.grad(A.leaky_relu)(0.0)) == 1.0 == float(jax.grad(jax.nn.leaky_relu)(0.0))


def test_leaky_relu_keeps_negative_slope_gradient():
    assert float(jax.grad(A.leaky_relu)(-3.0, 0.2)) == pytest.approx(0.2)


def test_gelu_default_is_exact_erf_form_unlike_jax_nn_default():
    x = jnp.array([-1.5, 0.7, 2.0])
    exact = 0.5 * x * (1 + jax.scipy.special.erf(x / np.sqrt(2)))
    np.testing.assert_allclose(A.gelu(x), exact, rtol=1e-6)
    assert not np.allclose(A.gelu(x), jax.nn.gelu(x), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("big", [1e4, -1e4, 1e3, -1e3])
def test_sigmoid_is_finite_and_saturated_for_huge_inputs(big, transform):
    x = jnp.array([big], jnp.float32)
    y = transform(A.sigmoid)(x)
    g = transform(jax.grad(lambda v: jnp.sum(A.sigmoid(v))))(x)
    assert np.isfinite(y).all() and np.isfinite(g).all()
    assert float(y[0]) == (1.0 if big > 0 else 0.0)


def test_sigmoid_derivative_at_zero_is_one_quarter():
    assert float(jax.grad(A.sigmoid)(0.0)) == pytest.approx(0.25)


def test_sigmoid_maps_into_open_unit_interval_for_moderate_inputs():
    y = A.sigmoid(_x((100,), scale=5.0))
    assert bool(jnp.all((y > 0) & (y < 1)))


def test_softmax_rows_sum_to_one_along_any_axis(transform):
    x = _x((3, 4, 5))
    for axis in (0, 1, -1):
        s = transform(functools.partial(A.softmax, axis=axis))(x)
        np.testing.assert_allclose(jnp.sum(s, axis=axis), 1.0, rtol=1e-6)


def test_softmax_is_invariant_to_adding_a_constant():
    x = _x()
    np.testing.assert_allclose(A.softmax(x + 100.0), A.softmax(x), rtol=1e-5, atol=1e-7)


def test_softmax_and_log_softmax_are_finite_for_logit_gap_1e4(transform):
    x = jnp.array([[1e4, 0.0, -1e4]], jnp.float32)
    s = transform(A.softmax)(x)
    ls = transform(A.log_softmax)(x)
    assert np.isfinite(s).all() and np.isfinite(ls).all()
    assert s[0].tolist() == [1.0, 0.0, 0.0]
    assert ls[0].tolist() == [0.0, -1e4, -2e4]


def test_log_softmax_gradient_is_finite_for_logit_gap_1e4():
    x = jnp.array([1e4, 0.0, -1e4], jnp.float32)
    g = jax.grad(lambda v: A.log_softmax(v)[1])(x)
    np.testing.assert_allclose(g, [-1.0, 1.0, 0.0], atol=1e-6)


def test_log_softmax_equals_log_of_softmax_in_moderate_range():
    x = _x()
    np.testing.assert_allclose(A.log_softmax(x), jnp.log(A.softmax(x)), rtol=1e-5, atol=1e-6)


def test_get_returns_the_named_function():
    assert A.get("relu") is A.relu and A.get("tanh") is A.tanh
    x = _x((5,))
    np.testing.assert_allclose(A.get("gelu_tanh")(x), A.gelu(x, approximate=True))


def test_get_unknown_raises_listing_valid_names():
    with pytest.raises(ValueError, match=r"expected one of relu, leaky_relu.*got 'swish'"):
        A.get("swish")


def test_softmax_axis_out_of_range_raises_with_shape():
    with pytest.raises(ValueError, match=r"expected axis in \[-2, 2\).*got axis 2.*\(4, 5\)"):
        A.softmax(_x(), axis=2)


def test_log_softmax_of_scalar_raises_expected_axis():
    with pytest.raises(ValueError, match=r"log_softmax: expected axis in \[0, 0\).*shape \(\)"):
        A.log_softmax(jnp.float32(1.0))
