import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnn import initializers
from jaxnn.layers.dense import dense, init_dense


def _x(shape, seed=0, dtype=np.float32):
    return jnp.asarray(np.random.default_rng(seed).standard_normal(shape), dtype)


def _dense_case():
    params = {"w": _x((3, 2), 1, np.float64), "b": _x((2,), 2, np.float64)}
    return dense, (params, _x((4, 3), 3, np.float64))


GRAD_CASES = {"jaxnn.layers.dense.dense": _dense_case}


def test_init_dense_shapes_dtype_and_zero_bias():
    p = init_dense(jax.random.key(0), 5, 3)
    assert p["w"].shape == (5, 3) and p["b"].shape == (3,)
    assert p["w"].dtype == jnp.float32 and not jnp.any(p["b"])


def test_init_dense_uses_given_initializer():
    p = init_dense(jax.random.key(0), 4, 2, w_init=initializers.he_normal)
    assert jnp.array_equal(p["w"], initializers.he_normal(jax.random.key(0), (4, 2)))


def test_dense_computes_x_w_plus_b(transform):
    params = {"w": _x((3, 2), 1), "b": _x((2,), 2)}
    x = _x((4, 3))
    want = np.asarray(x) @ np.asarray(params["w"]) + np.asarray(params["b"])
    np.testing.assert_allclose(transform(dense)(params, x), want, rtol=1e-6, atol=1e-6)


def test_dense_maps_every_leading_axis(transform):
    params = init_dense(jax.random.key(1), 3, 2)
    x = _x((2, 5, 3))
    y = transform(dense)(params, x)
    assert y.shape == (2, 5, 2)
    np.testing.assert_allclose(y[1, 4], dense(params, x[1, 4]), rtol=1e-6)


def test_vmap_of_unbatched_dense_equals_batched_call():
    params = init_dense(jax.random.key(2), 3, 4)
    x = _x((6, 3))
    np.testing.assert_allclose(
        jax.vmap(lambda xi: dense(params, xi))(x), dense(params, x), rtol=1e-6
    )


def test_dense_is_affine_not_linear_when_bias_is_nonzero():
    params = {"w": _x((3, 2), 1), "b": jnp.ones((2,))}
    a, b = _x((3,), 4), _x((3,), 5)
    # affine: f(a + b) = f(a) + f(b) - f(0); linear would drop the f(0) = b term.
    np.testing.assert_allclose(
        dense(params, a + b),
        dense(params, a) + dense(params, b) - dense(params, jnp.zeros(3)),
        rtol=1e-5,
        atol=1e-6,
    )
    assert not np.allclose(dense(params, a + b), dense(params, a) + dense(params, b))


def test_dense_gradient_wrt_w_is_outer_product_of_input_and_upstream():
    params = init_dense(jax.random.key(3), 3, 2)
    x = _x((3,))
    g = jax.grad(lambda p: jnp.sum(dense(p, x)))(params)
    np.testing.assert_allclose(g["w"], np.outer(x, np.ones(2)), rtol=1e-6)
    np.testing.assert_allclose(g["b"], np.ones(2))


def test_dense_wrong_input_width_raises_with_shapes():
    params = init_dense(jax.random.key(0), 3, 2)
    with pytest.raises(ValueError, match=r"expected input with last axis 3.*got shape \(4, 5\)"):
        dense(params, _x((4, 5)))


def test_dense_scalar_input_raises_expected_rank():
    params = init_dense(jax.random.key(0), 1, 2)
    with pytest.raises(ValueError, match=r"expected rank >= 1, got rank 0"):
        dense(params, jnp.float32(1.0))


def test_dense_params_missing_the_weights_raise_listing_keys():
    with pytest.raises(
        ValueError, match=r"expected params with keys \['b', 'w'\] \(or \['w'\]\), got \['b'\]"
    ):
        dense({"b": jnp.ones((2,))}, _x((4, 3)))


def test_a_dense_layer_without_bias_is_its_matrix_product():
    params = init_dense(jax.random.key(0), 3, 2, bias=False)
    assert sorted(params) == ["w"]
    x = _x((4, 3))
    np.testing.assert_array_equal(dense(params, x), x @ params["w"])
    with_bias = init_dense(jax.random.key(0), 3, 2)
    np.testing.assert_array_equal(with_bias["w"], params["w"])  # the same draw of w
    with pytest.raises(ValueError, match="bias"):
        init_dense(jax.random.key(0), 3, 2, bias="no")


def test_dense_mismatched_bias_shape_raises():
    with pytest.raises(
        ValueError, match=r"expected w of shape \(in, out\).*got w \(3, 2\), b \(3,\)"
    ):
        dense({"w": jnp.ones((3, 2)), "b": jnp.ones((3,))}, _x((4, 3)))


@pytest.mark.parametrize("dims", [(0, 3), (3, -1)])
def test_init_dense_non_positive_size_raises(dims):
    with pytest.raises(ValueError, match=r"expected (in|out)_dim to be a positive integer, got"):
        init_dense(jax.random.key(0), *dims)
