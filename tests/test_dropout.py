"""Tests for jaxnn.layers.dropout: inverted dropout keeps the expectation; eval is the identity."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnn.layers.dropout import dropout

X = jnp.asarray([0.5, -1.0, 2.0, 3.0, -0.25, 1.5], jnp.float32)


def test_dropout_is_identity_in_eval_even_with_a_key(transform):
    f = transform(lambda x, k: dropout(x, 0.5, key=k, train=False))
    np.testing.assert_array_equal(f(X, jax.random.key(0)), X)
    np.testing.assert_array_equal(dropout(X, 0.9), X)  # no key needed in eval


def test_dropout_with_rate_zero_is_identity_in_training():
    np.testing.assert_array_equal(dropout(X, 0.0, train=True), X)


def test_dropout_zeroes_or_rescales_each_element_by_one_over_keep_probability(transform):
    x = jnp.linspace(1.0, 2.0, 200)
    y = np.asarray(
        transform(lambda x, k: dropout(x, 0.25, key=k, train=True))(x, jax.random.key(1))
    )
    kept = y != 0
    assert 0 < kept.sum() < x.size  # some of each
    np.testing.assert_allclose(y[kept], np.asarray(x)[kept] / 0.75, rtol=1e-6)


@pytest.mark.parametrize("rate", [0.2, 0.5])
def test_dropout_keeps_the_expectation_over_many_draws(transform, rate):
    n = 4000
    keys = jax.random.split(jax.random.key(2), n)
    draws = transform(jax.vmap(lambda k: dropout(X, rate, key=k, train=True)))(keys)  # (n, D)
    mean = np.asarray(draws, np.float64).mean(axis=0)
    # Each draw is x/(1-rate) with probability 1-rate, else 0: std = |x| sqrt(rate/(1-rate)).
    std_of_mean = np.abs(np.asarray(X)) * np.sqrt(rate / (1 - rate)) / np.sqrt(n)
    assert np.all(np.abs(mean - np.asarray(X)) < 5 * std_of_mean)
    dropped = np.mean(np.asarray(draws) == 0)
    assert abs(dropped - rate) < 5 * np.sqrt(rate * (1 - rate) / draws.size)


def test_dropout_mask_depends_only_on_the_key():
    x = jnp.ones((64,))
    a = dropout(x, 0.5, key=jax.random.key(3), train=True)
    b = dropout(x, 0.5, key=jax.random.key(3), train=True)
    c = dropout(x, 0.5, key=jax.random.key(4), train=True)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_dropout_with_a_fixed_key_is_linear_in_x(transform):
    f = transform(lambda x: dropout(x, 0.3, key=jax.random.key(5), train=True))
    y = jnp.flip(X) + 0.5
    np.testing.assert_allclose(f(2.0 * X - 3.0 * y), 2.0 * f(X) - 3.0 * f(y), rtol=1e-5, atol=1e-5)


def test_dropout_vmap_over_keys_draws_independent_masks():
    keys = jax.random.split(jax.random.key(6), 8)
    masks = jax.vmap(lambda k: dropout(jnp.ones((32,)), 0.5, key=k, train=True))(keys) != 0
    assert len({m.tobytes() for m in np.asarray(masks)}) == 8


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: dropout(X, 0.5, train=True), "expected a PRNG key when train=True"),
        (lambda: dropout(X, 1.0, key=jax.random.key(0), train=True), r"rate in \[0, 1\)"),
        (lambda: dropout(X, -0.1), r"rate in \[0, 1\)"),
        (lambda: dropout(X, "0.5"), r"rate in \[0, 1\)"),
        (lambda: dropout(jnp.ones(3, jnp.int32), 0.5), "floating-point"),
    ],
)
def test_bad_input_raises_value_error_naming_expected_and_given(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def _dropout_case():
    key = jax.random.key(7)
    x = jnp.asarray(np.random.default_rng(0).standard_normal((3, 5)), jnp.float64)
    return (lambda x: dropout(x, 0.4, key=key, train=True)), (x,)


GRAD_CASES = {"jaxnn.layers.dropout.dropout": _dropout_case}
