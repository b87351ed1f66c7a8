import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxnn import models
from jaxnn.train.state import create_train_state
from jaxnn.train.step import (
    make_epoch_step,
    make_eval_step,
    make_train_step,
    per_example_metrics,
)

MODEL = models.build("mlp", input_dim=6, hidden=(16,), num_classes=3)


def _batch(seed=0, n=8):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 6)).astype(np.float32), rng.integers(0, 3, n).astype(np.int32)


def _setup(lr=1e-2, **options):
    tx = optax.adam(lr)
    step = make_train_step(MODEL, tx, schedule=lambda s: lr, jitted=False, **options)
    return create_train_state(MODEL, tx, 0), step


def test_train_step_compiles_once_across_steps():
    state, step = _setup()
    step = jax.jit(chex.assert_max_traces(step, n=1))
    for i in range(4):
        state, _ = step(state, *_batch(i))
    assert int(state.step) == 4


def test_make_train_step_returns_a_compiled_step_that_donates_the_state():
    tx = optax.adam(1e-2)
    state = create_train_state(MODEL, tx, 0)
    step = make_train_step(MODEL, tx)
    params = state.params
    new, _ = step(state, *_batch())
    assert int(new.step) == 1
    assert all(leaf.is_deleted() for leaf in jax.tree.leaves(params))


def test_train_step_lowers_the_loss_on_a_fixed_batch():
    state, step = _setup()
    step = jax.jit(step)
    x, y = _batch()
    losses = []
    for _ in range(30):
        state, m = step(state, x, y)
        losses.append(float(m["loss"]))
    assert losses[-1] < 0.5 * losses[0]


def test_train_step_reports_grad_norm_equal_to_the_global_norm_of_the_gradient():
    state, step = _setup()
    x, y = _batch()

    def loss(params):
        logits, _ = MODEL.apply(params, x)
        return per_example_metrics("classification", logits, y)[0].mean()

    _, m = step(state, x, y)
    expected = optax.global_norm(jax.grad(loss)(state.params))
    np.testing.assert_allclose(m["grad_norm"], expected, rtol=1e-5)
    assert float(m["lr"]) == pytest.approx(1e-2)


def test_a_non_finite_batch_leaves_params_unchanged_and_names_the_first_bad_leaf():
    state, step = _setup(guard=True)
    x, y = _batch()
    x[0, 0] = np.nan

    def loss(params):
        logits, _ = MODEL.apply(params, x)
        return per_example_metrics("classification", logits, y)[0].mean()

    grads = jax.tree.leaves(jax.grad(loss)(state.params))
    first_bad = next(i for i, g in enumerate(grads) if not np.all(np.isfinite(g)))
    new, m = step(state, x, y)
    assert not bool(m["finite"])
    assert int(m["bad_leaf"]) == first_bad
    for a, b in zip(jax.tree.leaves(new.params), jax.tree.leaves(state.params), strict=True):
        np.testing.assert_array_equal(a, b)
    assert int(new.step) == 1


def test_without_the_guard_a_non_finite_batch_is_applied_and_still_reported():
    state, step = _setup(guard=False)
    x, y = _batch()
    x[0, 0] = np.nan
    new, m = step(state, x, y)
    assert not bool(m["finite"]) and int(m["bad_leaf"]) >= 0
    assert not all(np.all(np.isfinite(a)) for a in jax.tree.leaves(new.params))


@pytest.mark.parametrize("guard", [True, False])
def test_a_finite_step_reports_no_bad_leaf_and_guarded_or_not_gives_the_same_update(guard):
    state, step = _setup(guard=guard)
    reference, _ = _setup(guard=not guard)[1](state, *_batch())
    new, m = step(state, *_batch())
    assert bool(m["finite"]) and int(m["bad_leaf"]) == -1
    for a, b in zip(jax.tree.leaves(new), jax.tree.leaves(reference), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)  # compiled apart: rounding only


def test_update_norm_is_the_norm_of_the_parameter_change_when_asked_and_nan_by_default():
    state, step = _setup(update_norm=True)
    new, m = step(state, *_batch())
    change = jax.tree.map(lambda a, b: a - b, new.params, state.params)
    np.testing.assert_allclose(m["update_norm"], optax.global_norm(change), rtol=1e-4)
    _, m_default = _setup()[1](state, *_batch())
    assert np.isnan(float(m_default["update_norm"]))
    np.testing.assert_allclose(m_default["grad_norm"], m["grad_norm"], rtol=1e-6)


def test_padded_rows_of_weight_0_change_nothing_in_the_update():
    state, step = _setup()
    x, y = _batch(3, n=5)
    real, _ = jax.jit(step)(state, x, y)
    garbage = np.full((3, 6), 1e3, np.float32)  # padding rows far from the data
    x_pad, y_pad = np.concatenate([x, garbage]), np.concatenate([y, [2, 2, 2]]).astype(np.int32)
    weight = np.array([1, 1, 1, 1, 1, 0, 0, 0], np.float32)
    state, _ = _setup()
    padded, metrics = jax.jit(step)(state, x_pad, y_pad, weight)
    for a, b in zip(jax.tree.leaves(real.params), jax.tree.leaves(padded.params), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    loss, _ = per_example_metrics("classification", MODEL.apply(state.params, x)[0], y)
    assert float(metrics["loss"]) == pytest.approx(float(loss.mean()), rel=1e-6)


def test_eval_step_ignores_padded_examples():
    state, _ = _setup()
    ev = jax.jit(make_eval_step(MODEL))
    x, y = _batch(n=5)
    full = ev(state.params, {}, x, y, np.ones(5, np.float32))
    xp = np.concatenate([x, np.full((3, 6), 1e3, np.float32)])
    yp = np.concatenate([y, np.zeros(3, np.int32)])
    padded = ev(state.params, {}, xp, yp, np.array([1.0] * 5 + [0.0] * 3, np.float32))
    for k in ("loss", "correct", "count"):
        np.testing.assert_allclose(padded[k], full[k], rtol=1e-6)


def test_epoch_scan_performs_the_same_updates_as_the_python_loop():
    state, step = _setup()
    rng = np.random.default_rng(0)
    x_all = rng.normal(size=(32, 6)).astype(np.float32)
    y_all = rng.integers(0, 3, 32).astype(np.int32)
    idx = rng.permutation(32).reshape(4, 8)
    jstep = jax.jit(step)
    looped = state
    for row in idx:
        looped, _ = jstep(looped, x_all[row], y_all[row])
    scanned, metrics = jax.jit(make_epoch_step(step))(state, x_all, y_all, jnp.asarray(idx))
    assert metrics["loss"].shape == (4,)
    for a, b in zip(jax.tree.leaves(looped.params), jax.tree.leaves(scanned.params), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize(
    "task, out_shape, y",
    [
        ("classification", (4, 3), np.array([0, 1, 2, 0])),
        ("language_model", (4, 5, 3), np.zeros((4, 5), np.int32)),
        ("regression", (4, 1), np.zeros((4, 1), np.float32)),
    ],
)
def test_per_example_metrics_give_one_value_per_example(task, out_shape, y):
    loss, correct = per_example_metrics(task, jnp.ones(out_shape), jnp.asarray(y))
    assert loss.shape == (4,) and correct.shape == (4,)


def test_unknown_task_lists_the_valid_ones():
    with pytest.raises(ValueError, match="classification, regression, language_model"):
        make_train_step(MODEL, optax.sgd(0.1), task="ranking")


def test_bfloat16_compute_trains_and_keeps_float32_master_params_and_optimizer_state():
    state, step = _setup(compute_dtype="bfloat16")
    step = jax.jit(step)
    x, y = _batch()
    losses = []
    for _ in range(30):
        state, m = step(state, x, y)
        losses.append(float(m["loss"]))
    assert losses[-1] < 0.5 * losses[0]
    leaves = jax.tree.leaves((state.params, state.opt_state))
    assert all(a.dtype in (jnp.float32, jnp.int32) for a in leaves)
    assert m["loss"].dtype == jnp.float32
