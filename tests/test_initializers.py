import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnn import initializers as I

# name -> (ours, jax.nn.initializers twin, target variance as a function of (fan_in, fan_out))
VARIANCE_SCALING = {
    "glorot_uniform": (
        I.glorot_uniform,
        jax.nn.initializers.glorot_uniform(),
        lambda i, o: 2 / (i + o),
    ),
    "glorot_normal": (
        I.glorot_normal,
        jax.nn.initializers.glorot_normal(),
        lambda i, o: 2 / (i + o),
    ),
    "he_uniform": (I.he_uniform, jax.nn.initializers.he_uniform(), lambda i, o: 2 / i),
    "he_normal": (I.he_normal, jax.nn.initializers.he_normal(), lambda i, o: 2 / i),
    "lecun_uniform": (I.lecun_uniform, jax.nn.initializers.lecun_uniform(), lambda i, o: 1 / i),
    "lecun_normal": (I.lecun_normal, jax.nn.initializers.lecun_normal(), lambda i, o: 1 / i),
}
NAMES = sorted(VARIANCE_SCALING)


def test_compute_fans_of_dense_kernel_are_in_and_out():
    assert I.compute_fans((300, 70)) == (300, 70)


def test_compute_fans_of_hwio_kernel_multiply_by_receptive_field():
    assert I.compute_fans((3, 5, 16, 32)) == (3 * 5 * 16, 3 * 5 * 32)


@pytest.mark.parametrize("name", NAMES)
def test_variance_of_large_draw_matches_formula(name):
    init, _, target = VARIANCE_SCALING[name]
    w = np.asarray(init(jax.random.key(0), (512, 256)), np.float64)
    want = target(512, 256)
    # The sample variance of n = 131072 draws has relative standard error sqrt(2 / n) < 0.4%.
    assert abs(w.var() / want - 1) < 0.03
    assert abs(w.mean()) < 4 * math.sqrt(want / w.size)


@pytest.mark.parametrize("name", NAMES)
def test_variance_matches_jax_nn_initializers(name):
    ours, theirs, _ = VARIANCE_SCALING[name]
    a = np.asarray(ours(jax.random.key(1), (256, 512)), np.float64)
    b = np.asarray(theirs(jax.random.key(2), (256, 512)), np.float64)
    assert abs(a.var() / b.var() - 1) < 0.03
    # Same support: uniforms share their bound, truncated normals their 2-sigma cut.
    assert abs(np.abs(a).max() / np.abs(b).max() - 1) < 0.02


@pytest.mark.parametrize("name", ["he_normal", "glorot_uniform"])
def test_conv_kernel_variance_uses_receptive_field_times_channels(name):
    init, _, target = VARIANCE_SCALING[name]
    w = np.asarray(init(jax.random.key(3), (3, 3, 64, 128)), np.float64)
    assert abs(w.var() / target(3 * 3 * 64, 3 * 3 * 128) - 1) < 0.03


def test_uniform_draws_stay_inside_glorot_bound():
    w = I.glorot_uniform(jax.random.key(4), (100, 50))
    assert float(jnp.max(jnp.abs(w))) <= math.sqrt(6 / 150)


def test_normal_draws_are_truncated_at_two_standard_deviations():
    w = I.he_normal(jax.random.key(5), (200, 100))
    assert float(jnp.max(jnp.abs(w))) <= 2 * math.sqrt(2 / 200) / 0.87962566103423978 + 1e-6


@pytest.mark.parametrize("name", NAMES)
def test_initializer_returns_requested_shape_and_dtype(name, x64):
    init = VARIANCE_SCALING[name][0]
    w = init(jax.random.key(0), (2, 3, 4, 5), jnp.float64)
    assert w.shape == (2, 3, 4, 5) and w.dtype == jnp.float64


def test_same_key_gives_same_weights_and_different_keys_differ():
    a = I.he_uniform(jax.random.key(7), (8, 8))
    b = I.he_uniform(jax.random.key(7), (8, 8))
    c = I.he_uniform(jax.random.key(8), (8, 8))
    assert jnp.array_equal(a, b) and not jnp.array_equal(a, c)


def test_zeros_is_all_zero_of_any_shape():
    z = I.zeros(jax.random.key(0), (3,), jnp.float32)
    assert z.shape == (3,) and not jnp.any(z)


def test_initializers_work_under_jit_with_static_shape(transform):
    f = transform(lambda key: I.lecun_normal(key, (4, 6)))
    assert jnp.array_equal(f(jax.random.key(9)), I.lecun_normal(jax.random.key(9), (4, 6)))


def test_vector_shape_raises_expected_rank():
    with pytest.raises(ValueError, match=r"expected a shape of rank >= 2.*\(5,\)"):
        I.glorot_uniform(jax.random.key(0), (5,))


def test_negative_dimension_raises_with_given_shape():
    with pytest.raises(ValueError, match=r"expected shape of non-negative ints, got \(3, -1\)"):
        I.he_normal(jax.random.key(0), (3, -1))


def test_integer_dtype_raises_expected_floating():
    with pytest.raises(ValueError, match=r"expected floating-point dtype, got dtype int32"):
        I.glorot_normal(jax.random.key(0), (3, 3), jnp.int32)


@pytest.mark.parametrize("name", NAMES)
def test_named_initializer_is_variance_scaling_with_fixed_arguments(name):
    init = getattr(I, name)
    fixed = init.keywords
    key, shape = jax.random.key(11), (3, 3, 8, 16)
    assert init.func is I.variance_scaling
    assert jnp.array_equal(init(key, shape), I.variance_scaling(key, shape, **fixed))
    assert init.__name__ == name and init.__module__ == "jaxnn.initializers"


@pytest.mark.parametrize("name", NAMES)
def test_error_from_named_initializer_names_it(name):
    with pytest.raises(ValueError, match=rf"^{name}: expected a shape of rank >= 2"):
        getattr(I, name)(jax.random.key(0), (5,))


def test_variance_scaling_fan_out_mode_uses_output_fan():
    w = np.asarray(
        I.variance_scaling(
            jax.random.key(12), (64, 512), scale=1.0, mode="fan_out", distribution="uniform"
        ),
        np.float64,
    )
    assert abs(w.var() * 512 - 1) < 0.03
    assert np.abs(w).max() <= math.sqrt(3 / 512)


@pytest.mark.parametrize(
    ("mode", "distribution", "message"),
    [
        ("fan_sum", "uniform", r"variance_scaling: expected mode in .*got 'fan_sum'"),
        ("fan_in", "normal", r"variance_scaling: expected distribution in .*got 'normal'"),
    ],
)
def test_variance_scaling_unknown_mode_or_distribution_raises(mode, distribution, message):
    with pytest.raises(ValueError, match=message):
        I.variance_scaling(
            jax.random.key(0), (3, 3), scale=1.0, mode=mode, distribution=distribution
        )
