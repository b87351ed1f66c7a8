"""Tests for jaxnn.models.cnn: wiring against a Flax CNN, the input-layout rule, the stateful
contract with batch norm, and learning (a fast synthetic task; MNIST-1D accuracy marked slow)."""

import functools
import math
import types

import flax.linen as fnn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxnn import models
from jaxnn.models import cnn

RNG = np.random.default_rng(0)

SMALL_1D = cnn.Config(input_shape=(16,), channels=(4, 6), kernel_size=3, hidden=8, num_classes=3)
SMALL_2D = cnn.Config(input_shape=(8, 6, 2), channels=(3, 4), kernel_size=3, hidden=5)


@functools.cache
def _init(cfg, seed=0):
    """Params per (cfg, seed), made once: eager initialization compiles per shape."""
    return cnn.init(jax.random.key(seed), cfg)


def _shapes(cfg):
    return jax.eval_shape(functools.partial(cnn.init, cfg=cfg), jax.random.key(0))


def _randn(*shape):
    return jnp.asarray(RNG.standard_normal(shape), jnp.float32)


class FlaxCNN(fnn.Module):
    """The same network written with Flax layers (the independent reference)."""

    cfg: cnn.Config

    @fnn.compact
    def __call__(self, x):
        cfg = self.cfg
        x = x.reshape(x.shape[0], *cfg.input_shape[: cfg.ndim], cfg.in_channels)
        window = (cfg.pool,) * cfg.ndim
        for i, (c, pooled) in enumerate(zip(cfg.channels, cfg.pooled_after(), strict=True)):
            x = fnn.relu(fnn.Conv(c, (cfg.kernel_size,) * cfg.ndim, name=f"conv_{i}")(x))
            if pooled:
                x = fnn.max_pool(x, window, strides=window)
        x = x.reshape(x.shape[0], -1)
        for j, width in enumerate(cfg.hidden):
            x = fnn.relu(fnn.Dense(width, name=f"dense_{j}")(x))
        return fnn.Dense(cfg.num_classes, name=f"dense_{len(cfg.hidden)}")(x)


def _as_flax(params):
    return {"params": {k: {"kernel": v["w"], "bias": v["b"]} for k, v in params.items()}}


@pytest.mark.parametrize(
    "cfg",
    [
        SMALL_1D,
        SMALL_2D,
        cnn.Config(input_shape=(9, 7), channels=(2,)),
        cnn.Config(input_shape=(12,), channels=(2,), hidden=(6, 5)),
    ],
)
def test_cnn_apply_equals_a_flax_cnn_with_the_same_weights(transform, cfg):
    params = _init(cfg)
    params = jax.tree_util.tree_map(lambda a: a + 0.1 * _randn(*a.shape), params)  # nonzero bias
    x = _randn(3, *cfg.input_shape)
    logits = transform(lambda p, x: cnn.apply(p, x, cfg=cfg)[0])(params, x)
    ref = jax.jit(FlaxCNN(cfg).apply)(_as_flax(params), x)
    assert logits.shape == (3, cfg.num_classes)
    np.testing.assert_allclose(logits, ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "shape,ndim,channels,kernel",
    [((40,), 1, 1, (5, 1, 32)), ((28, 28), 2, 1, (5, 5, 1, 32)), ((8, 8, 3), 2, 3, (5, 5, 3, 32))],
)
def test_input_shape_rule_picks_1d_or_2d_convolutions(shape, ndim, channels, kernel):
    cfg = cnn.Config(input_shape=shape)
    assert (cfg.ndim, cfg.in_channels) == (ndim, channels)
    assert _shapes(cfg)["conv_0"]["w"].shape == kernel


def test_pooling_stops_before_the_grid_gets_smaller_than_the_window():
    cfg = cnn.Config(input_shape=(8, 8, 1), channels=(4, 4, 4, 4))
    assert cfg.pooled_after() == (True, True, True, False)  # 8 -> 4 -> 2 -> 1, then no more
    assert cfg.feature_shape == (1, 1, 4)
    no_pool = cnn.Config(input_shape=(8, 8, 1), channels=(4,), pool=1)
    assert no_pool.pooled_after() == (False,) and no_pool.feature_shape == (8, 8, 4)
    x = _randn(2, 8, 8, 1)
    logits = jax.jit(lambda p, x: cnn.apply(p, x, cfg=cfg)[0])(_init(cfg), x)
    assert logits.shape == (2, 10)


def test_conv_param_count_does_not_depend_on_input_length_only_the_dense_head_does():
    short, long = cnn.Config(input_shape=(40,)), cnn.Config(input_shape=(160,))
    count = lambda shapes, prefix: sum(
        math.prod(a.shape) for k, v in shapes.items() if k.startswith(prefix) for a in v.values()
    )
    s_short, s_long = _shapes(short), _shapes(long)
    assert count(s_short, "conv") == count(s_long, "conv") == (5 * 32 + 32) + 2 * (5 * 32 * 32 + 32)
    assert count(s_short, "dense") == 5 * 32 * 128 + 128 + 128 * 10 + 10  # 40 -> 20 -> 10 -> 5
    assert count(s_long, "dense") == 20 * 32 * 128 + 128 + 128 * 10 + 10  # 160 -> ... -> 20


def test_param_count_counts_every_scalar():
    params = _init(SMALL_1D)
    # conv 3*1*4+4, conv 3*4*6+6, dense (16/4)*6*8+8, dense 8*3+3
    assert cnn.param_count(params) == 16 + 78 + 200 + 27


def test_cnn_vmap_of_single_examples_equals_batched_call(transform):
    params = _init(SMALL_2D, 1)
    x = _randn(4, *SMALL_2D.input_shape)
    single = jax.vmap(lambda xi: cnn.apply(params, xi[None], cfg=SMALL_2D)[0][0])
    np.testing.assert_allclose(
        transform(single)(x), cnn.apply(params, x, cfg=SMALL_2D)[0], rtol=1e-5, atol=1e-6
    )


def test_pool_methods_give_the_same_logits():
    params = _init(SMALL_1D, 2)
    x = _randn(3, 16)
    out = [
        cnn.apply(params, x, cfg=cnn.Config(**{**vars(SMALL_1D), "pool_method": m}))[0]
        for m in ("auto", "reshape", "reduce_window")
    ]
    np.testing.assert_allclose(out[1], out[0], rtol=1e-6)
    np.testing.assert_allclose(out[2], out[0], rtol=1e-6, atol=1e-6)


def test_dropout_acts_only_in_training_and_follows_the_key(transform):
    cfg = SMALL_1D  # default dropout 0.25
    params, x = _init(cfg), _randn(4, 16)
    f = transform(lambda p, x, k: cnn.apply(p, x, cfg=cfg, train=True, key=k)[0])
    a, b = f(params, x, jax.random.key(0)), f(params, x, jax.random.key(1))
    assert not np.allclose(a, b)
    np.testing.assert_array_equal(a, f(params, x, jax.random.key(0)))
    evaluate = cnn.apply(params, x, cfg=cfg)[0]
    np.testing.assert_array_equal(evaluate, cnn.apply(params, x, cfg=cfg, key=jax.random.key(5))[0])
    with pytest.raises(ValueError, match="PRNG key for dropout"):
        cnn.apply(params, x, cfg=cfg, train=True)[0]


# ---------------------------------------------------------------------------------------------
# Batch norm and the stateful contract.

BN = cnn.Config(input_shape=(12,), channels=(3, 4), kernel_size=3, hidden=6, batch_norm=True)


def test_without_batch_norm_state_is_empty_and_none_means_empty():
    params, x = _init(SMALL_1D, 0), _randn(2, 16)
    assert cnn.init_state(SMALL_1D) == {}
    logits, state = cnn.apply(params, x, cfg=SMALL_1D)
    pair = cnn.apply(params, x, cfg=SMALL_1D, state={})
    np.testing.assert_array_equal(pair[0], logits)
    assert pair[1] == {} and state == {}


def test_batch_norm_cnn_updates_state_in_training_and_keeps_it_in_eval(transform):
    params, state, x = _init(BN, 1), cnn.init_state(BN), _randn(8, 12)
    assert set(params) == {"conv_0", "bn_0", "conv_1", "bn_1", "dense_0", "dense_1"}
    train = transform(lambda p, s, x, k: cnn.apply(p, x, cfg=BN, train=True, key=k, state=s))
    logits, new_state = train(params, state, x, jax.random.key(0))
    assert logits.shape == (8, 10)
    assert not np.allclose(new_state["bn_0"]["mean"], state["bn_0"]["mean"])
    evaluate = transform(lambda p, s, x: cnn.apply(p, x, cfg=BN, state=s))
    _, same = evaluate(params, new_state, x)
    for layer in same:
        np.testing.assert_array_equal(same[layer]["var"], new_state[layer]["var"])
    one = evaluate(params, new_state, x[:1])[0]  # eval: one example alone gives the same logits
    np.testing.assert_allclose(one[0], evaluate(params, new_state, x)[0][0], rtol=1e-5, atol=1e-6)


def test_models_build_wraps_the_cnn_with_and_without_batch_norm():
    for cfg in (SMALL_1D, BN):
        model = models.build("cnn", cfg)
        params, state = model.init(jax.random.key(0))
        x = _randn(4, *cfg.input_shape)
        logits, new_state = model.apply(params, x, state=state, train=True, key=jax.random.key(1))
        assert logits.shape == (4, cfg.num_classes)
        assert jax.tree_util.tree_structure(new_state) == jax.tree_util.tree_structure(state)


def test_batch_norm_cnn_without_state_raises():
    params = _init(BN, 0)
    with pytest.raises(ValueError, match=r"expected state= of shapes .*got \{\}"):
        cnn.apply(params, _randn(2, 12), cfg=BN)[0]


# ---------------------------------------------------------------------------------------------
# config_for and bad input.


def test_config_for_takes_input_shape_and_classes_from_the_dataset_info():
    info = types.SimpleNamespace(input_shape=(28, 28, 1), num_classes=7)
    cfg = cnn.config_for(info, channels=(8,), dropout=0.0)
    assert cfg.input_shape == (28, 28, 1) and cfg.num_classes == 7
    assert cfg.channels == (8,) and cfg.dropout == 0.0 and cfg.ndim == 2
    with pytest.raises(ValueError, match="without num_classes"):
        cnn.config_for(types.SimpleNamespace(input_shape=(40,)))
    with pytest.raises(ValueError, match="expected fields"):
        cnn.config_for(info, chanels=(8,))


@pytest.mark.parametrize(
    "fields,match",
    [
        ({"input_shape": (2, 3, 4, 5)}, r"\(L,\), \(H, W\) or \(H, W, C\)"),
        ({"input_shape": 40}, r"\(L,\), \(H, W\) or \(H, W, C\)"),
        ({"input_shape": (0,)}, "input_shape entry"),
        ({"channels": ()}, "non-empty tuple"),
        ({"channels": (4, -1)}, "channel count"),
        ({"kernel_size": 0}, "kernel_size"),
        ({"pool": 0}, "pool"),
        ({"dropout": 1.0}, "dropout"),
        ({"batch_norm": "yes"}, "batch_norm"),
        ({"pool_method": "fast"}, "pool_method"),
    ],
)
def test_bad_config_raises_value_error(fields, match):
    with pytest.raises(ValueError, match=match):
        cnn.Config(**fields)


def test_bad_input_or_params_raise_value_error():
    params = _init(SMALL_1D, 0)
    with pytest.raises(ValueError, match=r"expected input \(B, 16\), got shape \(2, 15\)"):
        cnn.apply(params, jnp.zeros((2, 15)), cfg=SMALL_1D)[0]
    with pytest.raises(ValueError, match=r"expected input \(B, 16\)"):
        cnn.apply(params, jnp.zeros((16,)), cfg=SMALL_1D)[0]
    with pytest.raises(ValueError, match="expected params of shapes"):
        cnn.apply(params, jnp.zeros((2, 40)), cfg=cnn.Config())  # params of SMALL_1D
    with pytest.raises(ValueError, match=r"expected cfg=cnn.Config\(...\)"):
        cnn.init(jax.random.key(0), {"channels": (4,)})


# ---------------------------------------------------------------------------------------------
# Learning.


def _bump_data(n, length, seed):
    """Class = width of a bump placed anywhere: a shift-invariant task a CNN learns quickly."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    x = 0.1 * rng.standard_normal((n, length))
    for i in range(n):
        start = rng.integers(0, length - 6)
        x[i, start : start + 2 * y[i] + 2] += 1.0
    return jnp.asarray(x, jnp.float32), jnp.asarray(y)


def _train(cfg, x, y, steps, lr, batch, seed=0):
    params = cnn.init(jax.random.key(seed), cfg)
    opt = optax.adam(lr)
    opt_state = opt.init(params)

    @jax.jit
    def step(params, opt_state, xb, yb, key):
        def loss(p):
            logits = cnn.apply(p, xb, cfg=cfg, train=True, key=key)[0]
            return optax.softmax_cross_entropy_with_integer_labels(logits, yb).mean()

        value, grads = jax.value_and_grad(loss)(params)
        updates, opt_state = opt.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, value

    rng = np.random.default_rng(seed)
    for i in range(steps):
        idx = rng.choice(len(x), batch, replace=False)
        params, opt_state, _ = step(params, opt_state, x[idx], y[idx], jax.random.key(i))
    return params


def _accuracy(params, cfg, x, y):
    return float(jnp.mean(jnp.argmax(cnn.apply(params, x, cfg=cfg)[0], -1) == y))


def test_cnn_learns_a_shift_invariant_bump_width_task_quickly():
    cfg = cnn.Config(input_shape=(24,), num_classes=3, channels=(8, 8), hidden=16)
    x, y = _bump_data(256, 24, seed=0)
    xt, yt = _bump_data(256, 24, seed=1)
    params = _train(cfg, x, y, steps=150, lr=3e-3, batch=32)
    assert _accuracy(params, cfg, xt, yt) > 0.9  # chance is 1/3


@pytest.mark.slow
def test_default_cnn_reaches_90_percent_on_mnist1d_and_beats_an_mlp_by_20_points():
    import mnist1d.data

    from jaxnn.models import mlp

    data = mnist1d.data.make_dataset(mnist1d.data.get_dataset_args())
    x, y = jnp.asarray(data["x"], jnp.float32), jnp.asarray(data["y"])
    xt, yt = jnp.asarray(data["x_test"], jnp.float32), jnp.asarray(data["y_test"])
    cfg = cnn.config_for(types.SimpleNamespace(input_shape=(40,), num_classes=10))
    cnn_acc = _accuracy(_train(cfg, x, y, steps=1200, lr=2e-3, batch=100), cfg, xt, yt)

    mlp_cfg = mlp.Config()
    params = mlp.init(jax.random.key(0), mlp_cfg)
    opt = optax.adam(2e-3)
    opt_state = opt.init(params)
    loss = lambda p, xb, yb: optax.softmax_cross_entropy_with_integer_labels(
        mlp.apply(p, xb, cfg=mlp_cfg)[0], yb
    ).mean()

    @jax.jit
    def step(p, s, xb, yb):
        g = jax.grad(loss)(p, xb, yb)
        u, s = opt.update(g, s, p)
        return optax.apply_updates(p, u), s

    rng = np.random.default_rng(0)
    for _ in range(1200):
        idx = rng.choice(len(x), 100, replace=False)
        params, opt_state = step(params, opt_state, x[idx], y[idx])
    mlp_acc = float(jnp.mean(jnp.argmax(mlp.apply(params, xt, cfg=mlp_cfg)[0], -1) == yt))
    assert cnn_acc >= 0.9
    assert cnn_acc - mlp_acc >= 0.2


# ---------------------------------------------------------------------------------------------
# Gradient-check registry (float64).


def _cnn_case():
    cfg = cnn.Config(
        input_shape=(6, 5), channels=(2,), kernel_size=3, hidden=3, num_classes=2, batch_norm=True
    )
    rng = np.random.default_rng(1)
    params = jax.tree_util.tree_map(
        lambda a: jnp.asarray(a, jnp.float64) + 0.1 * rng.standard_normal(a.shape),
        _init(cfg),
    )
    params["dense_0"]["w"] = 0.2 * params["dense_0"]["w"]
    params["dense_0"]["b"] = params["dense_0"]["b"] + 0.5  # live hidden units: gradients flow
    state = jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float64), cnn.init_state(cfg))
    key = jax.random.key(2)

    def f(params, x):  # training (batch norm statistics, a fixed dropout mask) and evaluation
        train = cnn.apply(params, x, cfg=cfg, train=True, key=key, state=state)[0]
        evaluate = cnn.apply(params, x, cfg=cfg, state=state)[0]
        return jnp.concatenate([train.ravel(), evaluate.ravel()])

    return f, (params, jnp.asarray(rng.standard_normal((3, 6, 5)), jnp.float64))


GRAD_CASES = {"jaxnn.models.cnn.apply": _cnn_case}
