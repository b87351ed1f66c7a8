import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxnn import losses as L


def _logits(shape=(6, 5), seed=0, scale=2.0, dtype=np.float32):
    return jnp.asarray(scale * np.random.default_rng(seed).standard_normal(shape), dtype)


def _labels(shape=(6,), num_classes=5, seed=1):
    return jnp.asarray(np.random.default_rng(seed).integers(0, num_classes, shape), jnp.int32)


def _probs(shape=(6, 5), seed=2, dtype=np.float32):
    return jax.nn.softmax(_logits(shape, seed, dtype=dtype))


def _ce_case():
    logits = _logits((4, 3), dtype=np.float64)
    labels = _labels((4,), 3)
    probs = _probs((4, 3), dtype=np.float64)

    def f(z, q):
        return jnp.stack(
            [
                L.cross_entropy(z, labels),
                L.cross_entropy(z, labels, label_smoothing=0.1),
                L.cross_entropy(z, q),
                L.cross_entropy(z, q, reduction="sum"),
            ]
        )

    return f, (logits, probs)


def _bce_case():
    labels = jnp.asarray(np.random.default_rng(3).uniform(0, 1, (3, 2)), jnp.float64)
    f = lambda z, y: jnp.stack([L.binary_cross_entropy(z, y), L.binary_cross_entropy(z, labels)])
    return f, (_logits((3, 2), dtype=np.float64), labels)


def _mse_case():
    f = lambda p, t: L.mse(p, t, reduction="none")
    return f, (_logits((3, 2), dtype=np.float64), _logits((3, 2), seed=5, dtype=np.float64))


def _l2_case():
    params = {"w": _logits((3, 2), dtype=np.float64), "b": _logits((2,), seed=4, dtype=np.float64)}
    f = lambda p: jnp.stack([L.l2_penalty(p, 0.3), L.l2_penalty(p, 0.3, exclude_1d=True)])
    return f, (params,)


GRAD_CASES = {
    "jaxnn.losses.mse": _mse_case,
    "jaxnn.losses.cross_entropy": _ce_case,
    "jaxnn.losses.binary_cross_entropy": _bce_case,
    "jaxnn.losses.l2_penalty": _l2_case,
}

NOT_DIFFERENTIABLE = {"jaxnn.losses.accuracy": "a fraction of integer argmax matches"}


# ---------------------------------------------------------------------------------------------
# Equal to optax


def test_cross_entropy_with_integer_labels_equals_optax(transform):
    z, y = _logits(), _labels()
    want = optax.softmax_cross_entropy_with_integer_labels(z, y)
    np.testing.assert_allclose(transform(L.cross_entropy)(z, y), want.mean(), rtol=1e-6)
    none = transform(functools.partial(L.cross_entropy, reduction="none"))(z, y)
    np.testing.assert_allclose(none, want, rtol=1e-6)


def test_cross_entropy_with_probability_targets_equals_optax(transform):
    z, q = _logits(), _probs()
    want = optax.softmax_cross_entropy(z, q)
    np.testing.assert_allclose(transform(L.cross_entropy)(z, q), want.mean(), rtol=1e-6)


def test_cross_entropy_sum_reduction_is_sum_of_per_example_losses(transform):
    z, y = _logits(), _labels()
    got = transform(functools.partial(L.cross_entropy, reduction="sum"))(z, y)
    np.testing.assert_allclose(
        got, optax.softmax_cross_entropy_with_integer_labels(z, y).sum(), 1e-6
    )


@pytest.mark.parametrize("smoothing", [0.1, 0.3])
def test_label_smoothing_equals_optax_smooth_labels(smoothing, transform):
    z, y = _logits(), _labels()
    q = optax.smooth_labels(jax.nn.one_hot(y, 5), smoothing)
    want = optax.softmax_cross_entropy(z, q).mean()
    f = transform(functools.partial(L.cross_entropy, label_smoothing=smoothing))
    np.testing.assert_allclose(f(z, y), want, rtol=1e-6)
    np.testing.assert_allclose(f(z, jax.nn.one_hot(y, 5)), want, rtol=1e-6)


def test_integer_labels_and_one_hot_targets_give_same_loss():
    z, y = _logits(), _labels()
    np.testing.assert_allclose(
        L.cross_entropy(z, y), L.cross_entropy(z, jax.nn.one_hot(y, 5)), rtol=1e-6
    )


def test_cross_entropy_accepts_extra_leading_axes_like_sequences():
    z, y = _logits((2, 3, 5)), _labels((2, 3))
    want = optax.softmax_cross_entropy_with_integer_labels(z, y)
    np.testing.assert_allclose(L.cross_entropy(z, y, reduction="none"), want, rtol=1e-6)


def test_binary_cross_entropy_equals_optax(transform):
    z = _logits((6, 3))
    y = jnp.asarray(np.random.default_rng(7).uniform(0, 1, (6, 3)), jnp.float32)
    want = optax.sigmoid_binary_cross_entropy(z, y)
    np.testing.assert_allclose(transform(L.binary_cross_entropy)(z, y), want.mean(), rtol=1e-6)
    none = functools.partial(L.binary_cross_entropy, reduction="none")
    np.testing.assert_allclose(transform(none)(z, y), want.mean(axis=1), rtol=1e-6)


def test_binary_cross_entropy_accepts_integer_zero_one_labels():
    z, y = _logits((8,)), jnp.array([0, 1, 1, 0, 1, 0, 0, 1])
    want = optax.sigmoid_binary_cross_entropy(z, y.astype(jnp.float32)).mean()
    np.testing.assert_allclose(L.binary_cross_entropy(z, y), want, rtol=1e-6)


def test_mse_equals_twice_optax_l2_loss(transform):
    p, t = _logits((4, 3)), _logits((4, 3), seed=9)
    np.testing.assert_allclose(transform(L.mse)(p, t), 2 * optax.l2_loss(p, t).mean(), rtol=1e-6)


def test_mse_none_reduction_gives_one_value_per_example():
    p, t = _logits((4, 3, 2)), _logits((4, 3, 2), seed=9)
    per_example = L.mse(p, t, reduction="none")
    assert per_example.shape == (4,)
    np.testing.assert_allclose(per_example, ((p - t) ** 2).mean(axis=(1, 2)), rtol=1e-6)


def test_l2_penalty_equals_weight_decay_times_optax_l2_loss(transform):
    params = {"dense_0": {"w": _logits((3, 4)), "b": _logits((4,), seed=3)}, "s": [_logits((2,))]}
    leaves = jax.tree_util.tree_leaves(params)
    want = 0.01 * sum(optax.l2_loss(leaf).sum() for leaf in leaves)
    np.testing.assert_allclose(transform(L.l2_penalty)(params, 0.01), want, rtol=1e-6)


def test_l2_penalty_exclude_1d_skips_biases_only():
    params = {"w": _logits((3, 4)), "b": _logits((4,), seed=3)}
    got = L.l2_penalty(params, 2.0, exclude_1d=True)
    np.testing.assert_allclose(got, jnp.sum(params["w"] ** 2), rtol=1e-6)
    assert float(L.l2_penalty(params, 2.0)) > float(got)


def test_l2_penalty_gradient_is_weight_decay_times_params():
    params = {"w": _logits((3, 4))}
    g = jax.grad(L.l2_penalty)(params, 0.5)
    np.testing.assert_allclose(g["w"], 0.5 * params["w"], rtol=1e-6)


def test_l2_penalty_skips_integer_leaves():
    params = {"w": jnp.ones((2, 2)), "step": jnp.array(7)}
    assert float(L.l2_penalty(params)) == 2.0


# ---------------------------------------------------------------------------------------------
# Numerical stability


def test_cross_entropy_and_gradient_are_finite_for_logit_gap_1e4(transform):
    z = jnp.array([[1e4, 0.0, -1e4], [0.0, 1e4, 0.0]], jnp.float32)
    y = jnp.array([2, 0])
    loss, grad = transform(jax.value_and_grad(L.cross_entropy))(z, y)
    assert np.isfinite(loss) and np.isfinite(grad).all()
    np.testing.assert_allclose(loss, (2e4 + 1e4) / 2, rtol=1e-6)
    # d loss / d z = (softmax(z) - one_hot(y)) / B
    np.testing.assert_allclose(grad, [[0.5, 0, -0.5], [-0.5, 0.5, 0]], atol=1e-6)


def test_binary_cross_entropy_and_gradient_are_finite_for_logits_1e4(transform):
    z = jnp.array([1e4, -1e4, 1e4, -1e4], jnp.float32)
    y = jnp.array([0.0, 1.0, 1.0, 0.0])
    loss, grad = transform(jax.value_and_grad(L.binary_cross_entropy))(z, y)
    assert np.isfinite(loss) and np.isfinite(grad).all()
    np.testing.assert_allclose(loss, (1e4 + 1e4) / 4, rtol=1e-6)
    np.testing.assert_allclose(grad, [0.25, -0.25, 0.0, 0.0], atol=1e-6)


def test_binary_cross_entropy_gradient_at_zero_logit_is_half_minus_label():
    g = jax.grad(L.binary_cross_entropy)(jnp.zeros((2,)), jnp.array([0.0, 1.0]))
    np.testing.assert_allclose(g, [0.25, -0.25], rtol=1e-6)


# ---------------------------------------------------------------------------------------------
# vmap of the unbatched call


def test_vmap_of_per_example_cross_entropy_equals_none_reduction():
    z, y = _logits(), _labels()
    per = jax.vmap(lambda zi, yi: L.cross_entropy(zi[None], yi[None]))(z, y)
    np.testing.assert_allclose(per, L.cross_entropy(z, y, reduction="none"), rtol=1e-6)


def test_vmap_of_per_example_mse_equals_none_reduction():
    p, t = _logits((4, 3)), _logits((4, 3), seed=9)
    per = jax.vmap(L.mse)(p, t)
    np.testing.assert_allclose(per, L.mse(p, t, reduction="none"), rtol=1e-6)


# ---------------------------------------------------------------------------------------------
# accuracy


def test_accuracy_counts_argmax_matches(transform):
    z = jnp.array([[2.0, 1.0], [0.0, 3.0], [5.0, 1.0], [0.0, 0.5]])
    y = jnp.array([0, 1, 1, 0])
    assert float(transform(L.accuracy)(z, y)) == 0.5


def test_accuracy_with_probability_targets_uses_their_argmax():
    z, y = _logits(), _labels()
    assert float(L.accuracy(z, jax.nn.one_hot(y, 5))) == float(L.accuracy(z, y))


def test_high_accuracy_and_high_loss_can_coexist():
    # Chapter 4: three unconfident correct answers and one confidently wrong one.
    z = jnp.array([[0.1, 0.0], [0.1, 0.0], [0.1, 0.0], [0.0, 20.0]])
    y = jnp.array([0, 0, 0, 0])
    assert float(L.accuracy(z, y)) == 0.75
    assert float(L.cross_entropy(z, y)) > float(L.cross_entropy(jnp.zeros_like(z), y))


# ---------------------------------------------------------------------------------------------
# Malformed inputs


def test_labels_length_mismatch_raises_with_both_shapes():
    with pytest.raises(
        ValueError, match=r"expected labels of shape \(6,\).*got labels of shape \(4,\)"
    ):
        L.cross_entropy(_logits(), _labels((4,)))


def test_labels_out_of_range_raises_with_given_range():
    with pytest.raises(ValueError, match=r"expected labels in \[0, 5\), got values in \[0, 5\]"):
        L.cross_entropy(_logits((2, 5)), jnp.array([0, 5]))


def test_negative_labels_raise_for_accuracy():
    with pytest.raises(ValueError, match=r"accuracy: expected labels in \[0, 5\).*\[-1, 0\]"):
        L.accuracy(_logits((2, 5)), jnp.array([-1, 0]))


def test_float_labels_where_rank_says_integer_raise():
    with pytest.raises(ValueError, match=r"expected integer labels of shape \(6,\).*dtype float32"):
        L.cross_entropy(_logits(), jnp.zeros((6,), jnp.float32))


def test_probability_targets_with_wrong_class_count_raise():
    with pytest.raises(ValueError, match=r"\(6, 5\) \(5 classes\).*got shape \(6, 4\)"):
        L.cross_entropy(_logits(), _probs((6, 4)))


def test_integer_targets_of_logits_rank_raise_suggesting_integer_labels():
    with pytest.raises(ValueError, match=r"expected floating-point probability targets.*int32"):
        L.cross_entropy(_logits((6, 1)), jnp.zeros((6, 1), jnp.int32))


def test_labels_of_wrong_rank_raise_with_shape():
    with pytest.raises(ValueError, match=r"expected integer labels of rank 1.*got rank 3"):
        L.cross_entropy(_logits(), jnp.zeros((6, 5, 1), jnp.int32))


def test_label_smoothing_of_one_raises():
    with pytest.raises(ValueError, match=r"expected label_smoothing in \[0, 1\), got 1.0"):
        L.cross_entropy(_logits(), _labels(), label_smoothing=1.0)


def test_unknown_reduction_raises_listing_valid_ones():
    with pytest.raises(ValueError, match=r"expected reduction in \('mean', 'sum', 'none'\).*'avg'"):
        L.mse(_logits(), _logits(), reduction="avg")


def test_mse_shape_mismatch_raises_with_both_shapes():
    with pytest.raises(ValueError, match=r"expected pred and target.*got \(6, 5\) and \(6, 4\)"):
        L.mse(_logits(), _logits((6, 4)))


def test_binary_cross_entropy_labels_outside_unit_interval_raise():
    with pytest.raises(
        ValueError, match=r"expected labels in \[0, 1\], got values in \[0.0, 2.0\]"
    ):
        L.binary_cross_entropy(_logits((3,)), jnp.array([0.0, 2.0, 1.0]))


def test_negative_weight_decay_raises():
    with pytest.raises(ValueError, match=r"expected weight_decay >= 0, got -0.1"):
        L.l2_penalty({"w": jnp.ones((2,))}, -0.1)


def test_integer_logits_raise_expected_floating():
    with pytest.raises(ValueError, match=r"expected floating-point logits, got dtype int32"):
        L.cross_entropy(jnp.zeros((2, 3), jnp.int32), jnp.array([0, 1]))


def test_traced_out_of_range_labels_are_not_checked_under_jit():
    # Values are unknown at trace time: the check cannot run, and no error is raised.
    out = jax.jit(L.cross_entropy)(_logits((2, 5)), jnp.array([0, 7]))
    assert out.shape == ()
