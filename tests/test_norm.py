"""Tests for jaxnn.layers.norm: layer norm and batch norm against Flax and their defining facts."""

import flax.linen as fnn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnn.layers import norm as N

RNG = np.random.default_rng(0)


def _randn(*shape, loc=0.0, scale=1.0):
    return jnp.asarray(loc + scale * RNG.standard_normal(shape), jnp.float32)


def _params(dim):
    return {"scale": _randn(dim, loc=1.0, scale=0.3), "bias": _randn(dim)}


def _state(dim):
    return {"mean": _randn(dim), "var": jnp.asarray(RNG.uniform(0.5, 2.0, dim), jnp.float32)}


# ---------------------------------------------------------------------------------------------
# Layer norm.


@pytest.mark.parametrize("shape", [(4, 6), (2, 3, 5, 6)])
def test_layer_norm_equals_flax_layer_norm_with_same_weights(transform, shape):
    params, x = _params(6), _randn(*shape, loc=2.0, scale=3.0)
    y = transform(lambda p, x: N.layer_norm(p, x))(params, x)
    ref = fnn.LayerNorm(epsilon=1e-5, use_fast_variance=False).apply({"params": params}, x)
    np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-5)


def test_a_layer_norm_without_bias_equals_flax_use_bias_false(transform):
    params, x = _params(6), _randn(4, 6, loc=2.0, scale=3.0)
    scale_only = {"scale": params["scale"]}
    assert sorted(N.init_layer_norm(6, bias=False)) == ["scale"]
    y = transform(lambda p, x: N.layer_norm(p, x))(scale_only, x)
    ref = fnn.LayerNorm(epsilon=1e-5, use_bias=False, use_fast_variance=False)
    np.testing.assert_allclose(y, ref.apply({"params": scale_only}, x), rtol=1e-5, atol=1e-5)


def test_layer_norm_gives_each_example_zero_mean_and_unit_variance(transform):
    x = _randn(5, 16, loc=-4.0, scale=10.0)
    y = transform(N.layer_norm)(N.init_layer_norm(16), x)
    np.testing.assert_allclose(np.mean(y, axis=-1), 0.0, atol=1e-5)
    np.testing.assert_allclose(np.var(y, axis=-1), 1.0, rtol=1e-3)


def test_layer_norm_vmap_of_single_examples_equals_batched_call(transform):
    params, x = _params(7), _randn(3, 4, 7)
    single = jax.vmap(lambda xi: N.layer_norm(params, xi))
    np.testing.assert_allclose(transform(single)(x), N.layer_norm(params, x), rtol=1e-6, atol=1e-6)


# ---------------------------------------------------------------------------------------------
# Batch norm.


def _flax_bn(params, state, x, train):
    layer = fnn.BatchNorm(
        use_running_average=not train, momentum=0.9, epsilon=1e-5, use_fast_variance=False
    )
    y, updates = layer.apply({"params": params, "batch_stats": state}, x, mutable=["batch_stats"])
    return y, updates["batch_stats"]


@pytest.mark.parametrize("shape", [(8, 5), (4, 3, 3, 5), (4, 6, 5)])
@pytest.mark.parametrize("train", [True, False])
def test_batch_norm_equals_flax_batch_norm_output_and_running_stats(transform, shape, train):
    params, state, x = _params(5), _state(5), _randn(*shape, loc=3.0, scale=2.0)
    y, new_state = transform(lambda p, s, x: N.batch_norm(p, x, state=s, train=train))(
        params, state, x
    )
    ref_y, ref_state = _flax_bn(params, state, x, train)
    np.testing.assert_allclose(y, ref_y, rtol=1e-5, atol=1e-5)
    for k in ("mean", "var"):
        np.testing.assert_allclose(new_state[k], ref_state[k], rtol=1e-5, atol=1e-6)


def test_batch_norm_train_normalizes_each_channel_over_batch_and_space(transform):
    x = _randn(6, 4, 4, 3, loc=5.0, scale=4.0)
    p, s = N.init_batch_norm(3), N.init_batch_norm_state(3)
    y, _ = transform(lambda x: N.batch_norm(p, x, state=s, train=True))(x)
    np.testing.assert_allclose(np.mean(y, axis=(0, 1, 2)), 0.0, atol=1e-5)
    np.testing.assert_allclose(np.var(y, axis=(0, 1, 2)), 1.0, rtol=1e-3)


def test_batch_norm_running_stats_move_towards_batch_stats_by_one_minus_momentum():
    x = _randn(64, 2, loc=4.0, scale=3.0)
    state = N.init_batch_norm_state(2)
    _, new = N.batch_norm(N.init_batch_norm(2), x, state=state, train=True, momentum=0.75)
    np.testing.assert_allclose(new["mean"], 0.25 * np.mean(x, axis=0), rtol=1e-5)
    np.testing.assert_allclose(new["var"], 0.75 + 0.25 * np.var(x, axis=0), rtol=1e-5)


def test_batch_norm_eval_output_for_one_example_does_not_depend_on_the_others(transform):
    params, state = _params(4), _state(4)
    x = _randn(5, 4)
    others_changed = x.at[1:].set(_randn(4, 4, loc=10.0, scale=5.0))
    f = transform(lambda x: N.batch_norm(params, x, state=state, train=False)[0])
    np.testing.assert_allclose(f(x)[0], f(others_changed)[0], rtol=1e-6)
    g = transform(lambda x: N.batch_norm(params, x, state=state, train=True)[0])
    assert not np.allclose(g(x)[0], g(others_changed)[0], atol=1e-2)  # in training it does


def test_batch_norm_eval_returns_state_unchanged_and_vmaps_over_examples(transform):
    params, state, x = _params(3), _state(3), _randn(4, 2, 3)
    y, new_state = transform(lambda s, x: N.batch_norm(params, x, state=s, train=False))(state, x)
    for k in ("mean", "var"):
        np.testing.assert_array_equal(new_state[k], state[k])
    single = jax.vmap(lambda xi: N.batch_norm(params, xi[None], state=state, train=False)[0][0])
    np.testing.assert_allclose(single(x), y, rtol=1e-6, atol=1e-6)


def test_batch_norm_axis_name_uses_statistics_of_the_global_batch():
    params, state = _params(3), _state(3)
    shards = _randn(4, 5, 3, loc=1.0, scale=2.0)  # 4 "devices" x 5 examples each
    per_device = jax.vmap(
        lambda xb: N.batch_norm(params, xb, state=state, train=True, axis_name="batch"),
        axis_name="batch",
    )
    y, new_state = per_device(shards)
    ref_y, ref_state = N.batch_norm(params, shards.reshape(20, 3), state=state, train=True)
    np.testing.assert_allclose(y.reshape(20, 3), ref_y, rtol=1e-5, atol=1e-5)
    for k in ("mean", "var"):
        np.testing.assert_allclose(new_state[k], np.broadcast_to(ref_state[k], (4, 3)), rtol=1e-5)
    local_y, _ = jax.vmap(lambda xb: N.batch_norm(params, xb, state=state, train=True))(shards)
    assert not np.allclose(local_y, y, atol=1e-2)  # without axis_name each shard is on its own


def test_batch_norm_running_stats_carry_no_gradient():
    params, state, x = _params(3), _state(3), _randn(6, 3)

    def stats_sum(x):
        new = N.batch_norm(params, x, state=state, train=True)[1]
        return new["mean"].sum() + new["var"].sum()

    np.testing.assert_array_equal(jax.grad(stats_sum)(x), np.zeros((6, 3)))


def test_init_batch_norm_is_the_identity_before_training():
    p, s = N.init_batch_norm(4), N.init_batch_norm_state(4)
    assert set(p) == {"scale", "bias"} and set(s) == {"mean", "var"}
    x = _randn(3, 4)
    y, _ = N.batch_norm(p, x, state=s, train=False, eps=1e-12)
    np.testing.assert_allclose(y, x, rtol=1e-6)


P3, S3 = {"scale": jnp.ones(3), "bias": jnp.zeros(3)}, {"mean": jnp.zeros(3), "var": jnp.ones(3)}


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: N.layer_norm(P3, jnp.zeros((2, 4))), "last axis 3, got shape"),
        (lambda: N.layer_norm(P3, jnp.zeros(())), "expected rank >= 1"),
        (lambda: N.layer_norm({"bias": jnp.ones(3)}, jnp.zeros((2, 3))), "keys"),
        (lambda: N.layer_norm(P3, jnp.zeros((2, 3)), eps=0.0), "eps > 0"),
        (lambda: N.layer_norm(P3, jnp.zeros((2, 3), jnp.int32)), "floating-point"),
        (lambda: N.batch_norm(P3, jnp.zeros((3,)), state=S3, train=True), "expected rank >= 2"),
        (lambda: N.batch_norm(P3, jnp.zeros((2, 4)), state=S3, train=True), "3 features"),
        (
            lambda: N.batch_norm(P3, jnp.zeros((2, 3)), state={"mean": jnp.zeros(3)}, train=True),
            "state",
        ),
        (
            lambda: N.batch_norm(
                P3, jnp.zeros((2, 3)), state={"mean": jnp.zeros(2), "var": jnp.ones(2)}, train=False
            ),
            "size 3",
        ),
        (
            lambda: N.batch_norm(P3, jnp.zeros((2, 3)), state=S3, train=True, momentum=1.0),
            "momentum",
        ),
        (lambda: N.batch_norm(P3, jnp.zeros((2, 3)), state=S3, train=True, eps=-1.0), "eps > 0"),
        (
            lambda: jax.jit(lambda t: N.batch_norm(P3, jnp.ones((2, 3)), state=S3, train=t))(True),
            "bool",
        ),
        (lambda: N.init_layer_norm(0), "dim"),
        (lambda: N.init_batch_norm(-2), "dim"),
        (lambda: N.init_batch_norm_state(2.5), "dim"),
    ],
)
def test_bad_input_raises_value_error_naming_expected_and_given(call, match):
    with pytest.raises(ValueError, match=match):
        call()


# ---------------------------------------------------------------------------------------------
# Gradient-check registry (float64).


def _f64(seed, *shape, loc=0.0):
    return jnp.asarray(loc + np.random.default_rng(seed).standard_normal(shape), jnp.float64)


def _layer_norm_case():
    params = {"scale": _f64(1, 5, loc=1.0), "bias": _f64(2, 5)}
    return (lambda p, x: N.layer_norm(p, x)), (params, _f64(3, 3, 5, loc=1.0))


def _batch_norm_case():
    state = {"mean": _f64(4, 3), "var": jnp.asarray([0.5, 1.0, 2.0], jnp.float64)}

    def f(params, x):  # both modes in one output
        train = N.batch_norm(params, x, state=state, train=True)[0]
        evaluate = N.batch_norm(params, x, state=state, train=False)[0]
        return jnp.concatenate([train.ravel(), evaluate.ravel()])

    params = {"scale": _f64(5, 3, loc=1.0), "bias": _f64(6, 3)}
    return f, (params, _f64(7, 4, 2, 3, loc=0.5))


GRAD_CASES = {
    "jaxnn.layers.norm.layer_norm": _layer_norm_case,
    "jaxnn.layers.norm.batch_norm": _batch_norm_case,
}
