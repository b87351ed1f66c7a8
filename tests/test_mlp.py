import collections
import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxnn import losses, models
from jaxnn.layers.dense import dense
from jaxnn.models import mlp

TINY = mlp.Config(input_dim=6, hidden=(5, 4), num_classes=3)
Info = collections.namedtuple("Info", ["input_shape", "num_classes"])


def _x(shape, seed=0, dtype=np.float32):
    return jnp.asarray(np.random.default_rng(seed).standard_normal(shape), dtype)


def _params_f64(cfg, seed=0):
    params = mlp.init(jax.random.key(seed), cfg)
    return jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float64), params)


def _apply_case():
    cfg = mlp.Config(input_dim=4, hidden=(3,), num_classes=2, activation="tanh")
    gelu = dataclasses.replace(cfg, activation="gelu")
    f = lambda p, x: jnp.stack([mlp.apply(p, x, cfg=cfg)[0], mlp.apply(p, x, cfg=gelu)[0]])
    return f, (_params_f64(cfg), _x((2, 2, 2), dtype=np.float64))


GRAD_CASES = {"jaxnn.models.mlp.apply": _apply_case}


def test_mlp_784_128_10_has_101770_params():
    cfg = mlp.Config(input_dim=784, hidden=(128,), num_classes=10)
    assert mlp.param_count(mlp.init(jax.random.key(0), cfg)) == 101_770


def test_param_count_is_sum_of_weights_and_biases_per_layer():
    sizes = TINY.sizes
    want = sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:], strict=True))
    assert mlp.param_count(mlp.init(jax.random.key(0), TINY)) == want


def test_init_builds_one_named_dense_layer_per_width_pair():
    params = mlp.init(jax.random.key(0), TINY)
    assert sorted(params) == ["dense_0", "dense_1", "dense_2"]
    shapes = [params[f"dense_{i}"]["w"].shape for i in range(3)]
    assert shapes == [(6, 5), (5, 4), (4, 3)]
    assert all(not jnp.any(params[f"dense_{i}"]["b"]) for i in range(3))


def test_apply_flattens_inputs_and_returns_logits(transform):
    params = mlp.init(jax.random.key(0), TINY)
    x = _x((7, 2, 3))
    f = transform(functools.partial(mlp.apply, cfg=TINY))
    logits, state = f(params, x)
    assert logits.shape == (7, 3) and state == {}
    np.testing.assert_allclose(logits, mlp.apply(params, x.reshape(7, 6), cfg=TINY)[0], rtol=1e-6)


def test_apply_equals_dense_relu_dense_relu_dense_written_out():
    params = mlp.init(jax.random.key(1), TINY)
    x = _x((3, 6))
    h = jax.nn.relu(dense(params["dense_0"], x))
    h = jax.nn.relu(dense(params["dense_1"], h))
    want = dense(params["dense_2"], h)
    np.testing.assert_allclose(mlp.apply(params, x, cfg=TINY)[0], want, rtol=1e-6, atol=1e-6)


def test_vmap_of_unbatched_apply_equals_batched_call():
    params = mlp.init(jax.random.key(0), TINY)
    x = _x((5, 6))
    per = jax.vmap(lambda xi: mlp.apply(params, xi[None], cfg=TINY)[0][0])(x)
    np.testing.assert_allclose(per, mlp.apply(params, x, cfg=TINY)[0], rtol=1e-6, atol=1e-6)


def test_apply_without_cfg_raises_instead_of_guessing_a_config():
    params = mlp.init(jax.random.key(0), TINY)
    with pytest.raises(TypeError, match="cfg"):
        mlp.apply(params, _x((2, 6)))
    with pytest.raises(ValueError, match=r"expected cfg=mlp.Config\(...\)"):
        mlp.apply(params, _x((2, 6)), cfg=None)


# ---------------------------------------------------------------------------------------------
# Chapter 3: a linear stack collapses to one layer; a ReLU MLP does not


def test_two_identity_layers_equal_one_affine_map():
    cfg = mlp.Config(input_dim=4, hidden=(3,), num_classes=2, activation="identity")
    params = mlp.init(jax.random.key(2), cfg)
    params["dense_0"]["b"] = _x((3,), seed=5)  # nonzero biases, so the test is not trivial
    params["dense_1"]["b"] = _x((2,), seed=6)
    (w1, b1), (w2, b2) = [(params[n]["w"], params[n]["b"]) for n in ("dense_0", "dense_1")]
    collapsed = {"w": w1 @ w2, "b": b1 @ w2 + b2}  # (4, 2), (2,)
    x = _x((8, 4))
    np.testing.assert_allclose(
        mlp.apply(params, x, cfg=cfg)[0], dense(collapsed, x), rtol=1e-5, atol=1e-6
    )


def test_relu_mlp_is_not_affine():
    cfg = mlp.Config(input_dim=4, hidden=(16,), num_classes=2)
    params = mlp.init(jax.random.key(3), cfg)
    f = lambda v: mlp.apply(params, v[None], cfg=cfg)[0][0]
    x, y = _x((4,), seed=7), _x((4,), seed=8)
    a, b = 0.3, 0.7  # a + b = 1, so an affine f would satisfy f(a x + b y) = a f(x) + b f(y)
    gap = jnp.max(jnp.abs(f(a * x + b * y) - (a * f(x) + b * f(y))))
    assert float(gap) > 1e-3


# ---------------------------------------------------------------------------------------------
# Dropout


def test_dropout_in_training_changes_logits_and_evaluation_ignores_it(transform):
    cfg = dataclasses.replace(TINY, hidden=(64,), dropout=0.5)
    params = mlp.init(jax.random.key(0), cfg)
    x = _x((4, 6))
    f = transform(lambda p, x, key: mlp.apply(p, x, cfg=cfg, train=True, key=key)[0])
    a, b = f(params, x, key=jax.random.key(1)), f(params, x, key=jax.random.key(2))
    assert not np.allclose(a, b)
    np.testing.assert_allclose(f(params, x, key=jax.random.key(1)), a, rtol=1e-6)
    no_drop = dataclasses.replace(cfg, dropout=0.0)
    np.testing.assert_allclose(
        mlp.apply(params, x, cfg=cfg)[0], mlp.apply(params, x, cfg=no_drop)[0], rtol=1e-6
    )


def test_dropout_preserves_expected_logits():
    # Inverted dropout: E[mask / (1 - p)] = 1, and the layer after it is affine, so the mean of
    # the training logits over many masks approaches the evaluation logits.
    cfg = mlp.Config(input_dim=3, hidden=(32,), num_classes=2, dropout=0.5)
    params = mlp.init(jax.random.key(0), cfg)
    x = _x((1, 3))
    keys = jax.random.split(jax.random.key(1), 2000)
    draws = jax.vmap(lambda k: mlp.apply(params, x, cfg=cfg, train=True, key=k)[0][0])(keys)
    standard_error = jnp.std(draws, axis=0) / np.sqrt(len(keys))  # (2,)
    mean_gap = jnp.abs(draws.mean(axis=0) - mlp.apply(params, x, cfg=cfg)[0][0])
    assert bool(jnp.all(mean_gap < 5 * standard_error))
    assert bool(jnp.all(standard_error > 0))  # the masks really vary


def test_dropout_without_key_raises():
    cfg = dataclasses.replace(TINY, dropout=0.2)
    params = mlp.init(jax.random.key(0), cfg)
    with pytest.raises(ValueError, match=r"expected a PRNG key for dropout.*got key=None"):
        mlp.apply(params, _x((2, 6)), cfg=cfg, train=True)[0]


# ---------------------------------------------------------------------------------------------
# Training and the model adapter


def test_loss_decreases_after_a_few_adam_steps_on_a_tiny_batch():
    params = mlp.init(jax.random.key(0), TINY)
    x, y = _x((8, 6), seed=1), jnp.arange(8) % 3
    loss_fn = lambda p: losses.cross_entropy(mlp.apply(p, x, cfg=TINY)[0], y)
    opt = optax.adam(1e-2)
    state = opt.init(params)

    @jax.jit
    def step(p, s):
        loss, g = jax.value_and_grad(loss_fn)(p)
        updates, s = opt.update(g, s, p)
        return optax.apply_updates(p, updates), s, loss

    first = float(loss_fn(params))
    for _ in range(20):
        params, state, _ = step(params, state)
    assert float(loss_fn(params)) < 0.8 * first


def test_models_build_wraps_mlp_for_the_training_loop():
    model = models.build("mlp", TINY)
    params, state = model.init(jax.random.key(0))
    logits, new_state = model.apply(params, _x((2, 6)), state=state, train=False)
    assert logits.shape == (2, 3) and new_state == {}


def test_config_for_reads_input_shape_and_num_classes():
    cfg = mlp.config_for(Info(input_shape=(28, 28, 1), num_classes=10), hidden=(32,))
    assert (cfg.input_dim, cfg.num_classes, cfg.hidden) == (784, 10, (32,))


def test_config_accepts_hidden_as_list_and_stores_tuple():
    assert mlp.Config(hidden=[8, 4]).hidden == (8, 4)
    assert mlp.Config(hidden=8).hidden == (8,)


def test_he_init_for_relu_and_glorot_for_tanh_hidden_layers():
    relu = mlp.init(jax.random.key(0), mlp.Config(input_dim=400, hidden=(300,)))
    tanh = mlp.init(jax.random.key(0), mlp.Config(input_dim=400, hidden=(300,), activation="tanh"))
    assert abs(float(jnp.var(relu["dense_0"]["w"])) * 400 / 2 - 1) < 0.05
    assert abs(float(jnp.var(tanh["dense_0"]["w"])) * 700 / 2 - 1) < 0.05


# ---------------------------------------------------------------------------------------------
# Malformed inputs


def test_unknown_activation_raises_listing_valid_names():
    with pytest.raises(ValueError, match=r"expected one of relu, leaky_relu.*got 'swish'"):
        mlp.Config(activation="swish")


@pytest.mark.parametrize(
    "kwargs,pattern",
    [
        ({"hidden": (8, 0)}, r"expected every hidden width to be a positive integer, got 0"),
        ({"input_dim": -3}, r"expected input_dim to be a positive integer, got -3"),
        ({"num_classes": 0}, r"expected num_classes to be a positive integer, got 0"),
        ({"hidden": "8"}, r"expected hidden as a tuple of positive ints, got '8'"),
        ({"dropout": 1.0}, r"expected dropout in \[0, 1\), got 1.0"),
        ({"remat": 1}, r"expected remat to be True or False, got 1"),
        ({"remat": "false"}, r"expected remat to be True or False, got 'false'"),
    ],
)
def test_bad_config_raises(kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        mlp.Config(**kwargs)


# ---------------------------------------------------------------------------------------------
# Rematerialization (Chapter 5: training stores activations).


@pytest.mark.parametrize(
    "hidden",
    [
        (32, 16, 16, 16, 16, 16, 8, 8),  # runs of 1, 5 (segments of 2 and one layer after), 2
        (16,) * 9,  # one run of 9: three segments of 3
    ],
)
def test_remat_gives_the_outputs_and_gradients_of_the_plain_mlp(hidden):
    cfg = mlp.Config(input_dim=12, hidden=hidden, num_classes=3, dropout=0.3)
    remat = dataclasses.replace(cfg, remat=True)
    params, x, y = mlp.init(jax.random.key(0), cfg), _x((64, 12)), jnp.arange(64) % 3
    key = jax.random.key(5)
    run = lambda c: mlp.apply(params, x, cfg=c, train=True, key=key)[0]
    np.testing.assert_allclose(run(remat), run(cfg), rtol=1e-5, atol=1e-6)  # the same masks

    def grads(c):
        loss = lambda p: losses.cross_entropy(mlp.apply(p, x, cfg=c, train=True, key=key)[0], y)
        return jax.jit(jax.grad(loss))(params)

    plain, again = grads(cfg), grads(remat)
    assert sorted(again) == sorted(plain) == sorted(params)  # dense_0, dense_1, ... as before
    for name in params:
        for leaf in ("w", "b"):
            np.testing.assert_allclose(
                again[name][leaf], plain[name][leaf], rtol=1e-5, atol=1e-6, err_msg=name
            )


def test_remat_cuts_the_scratch_memory_of_the_gradient(gradient_scratch_bytes):
    # Measured (jax 0.10.2, CPU): 0.98 MB with remat (segments of 4 layers) against 2.18 MB
    # without (0.45x).
    cfg = mlp.Config(input_dim=32, hidden=(32,) * 16, num_classes=10)
    params, x = mlp.init(jax.random.key(0), cfg), _x((512, 32))
    plain = gradient_scratch_bytes(mlp.apply, cfg, params, x)
    remat = gradient_scratch_bytes(mlp.apply, dataclasses.replace(cfg, remat=True), params, x)
    assert remat < 0.65 * plain, (remat, plain)


def test_input_of_wrong_size_raises_with_shape():
    params = mlp.init(jax.random.key(0), TINY)
    with pytest.raises(ValueError, match=r"expected input \(B, \.\.\.\) with 6 features.*\(2, 5\)"):
        mlp.apply(params, _x((2, 5)), cfg=TINY)[0]


def test_unbatched_input_raises_expected_rank():
    params = mlp.init(jax.random.key(0), TINY)
    with pytest.raises(ValueError, match=r"expected rank >= 2, got rank 1 with shape \(6,\)"):
        mlp.apply(params, _x((6,)), cfg=TINY)[0]


def test_params_not_matching_config_raise_with_both_shapes():
    params = mlp.init(jax.random.key(0), TINY)
    wider = dataclasses.replace(TINY, hidden=(7, 4))
    with pytest.raises(ValueError, match=r"expected weight shapes \[\(6, 7\).*got \[\(6, 5\)"):
        mlp.apply(params, _x((2, 6)), cfg=wider)[0]


def test_params_that_do_not_match_the_config_raise_with_both_shapes():
    params = mlp.init(jax.random.key(0), TINY)
    params["dense_1"] = {"w": jnp.ones((9, 4)), "b": jnp.zeros((4,))}
    with pytest.raises(ValueError, match=r"expected weight shapes .*got .*\(9, 4\)"):
        mlp.apply(params, _x((2, 6)), cfg=TINY)


def test_params_with_missing_layer_raise_listing_keys():
    params = mlp.init(jax.random.key(0), TINY)
    del params["dense_1"]
    with pytest.raises(ValueError, match=r"expected param keys \['dense_0', 'dense_1'\]"):
        mlp.apply(params, _x((2, 6)), cfg=TINY)


def test_config_for_without_num_classes_raises():
    info = collections.namedtuple("Shape", ["input_shape"])((40,))
    with pytest.raises(ValueError, match=r"expected a dataset info.*without num_classes"):
        mlp.config_for(info)


def test_config_for_unknown_override_raises():
    with pytest.raises(ValueError, match=r"expected fields from .*got \['width'\]"):
        mlp.config_for(Info((40,), 10), width=3)


def test_init_with_wrong_config_type_raises():
    with pytest.raises(ValueError, match=r"expected cfg=mlp.Config\(...\).*got dict"):
        mlp.init(jax.random.key(0), {"input_dim": 3})
