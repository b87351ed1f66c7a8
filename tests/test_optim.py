"""Tests for jaxnn.optim: the optimizer twins equal optax's, schedules, make_optimizer."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxnn import optim

# Optimizers are not functions the loss is differentiated through: nothing for the gradient-check
# registry (it covers activations, losses, layers and models).
GRAD_CASES = {}

STEPS = 50
LR = 0.05
MASK = {"hidden": {"w": True, "b": False}, "out": False}  # a prefix of the params tree


def _params():
    k1, k2 = jax.random.split(jax.random.key(0))
    return {
        "hidden": {"w": jax.random.normal(k1, (3, 4)), "b": jnp.full((4,), 0.5)},  # (in, h), (h,)
        "out": {"w": jax.random.normal(k2, (4, 2)), "b": jnp.full((2,), -0.5)},  # (h, out), (out,)
    }


def _grad_stream(params, steps, seed=1):
    """Random gradients with the params' structure, stacked over a leading step axis."""
    leaves, treedef = jax.tree.flatten(params)
    keys = jax.random.split(jax.random.key(seed), len(leaves))
    stacked = [
        jax.random.normal(k, (steps, *x.shape)) for k, x in zip(keys, leaves, strict=True)
    ]  # (S, ...)
    return jax.tree.unflatten(treedef, stacked)


def _run(opt, params, grads):
    """Apply ``opt`` once per leading slice of ``grads``; return the final params."""

    def body(carry, g):
        p, state = carry
        updates, state = opt.update(g, state, p)
        return (optax.apply_updates(p, updates), state), None

    (params, _), _ = jax.lax.scan(body, (params, opt.init(params)), grads)
    return params


def _matrices_only(params):
    return jax.tree.map(lambda p: p.ndim > 1, params)


def _schedule():
    return optax.warmup_cosine_decay_schedule(0.0, LR, warmup_steps=5, decay_steps=STEPS)


TWINS = {
    "sgd": (lambda lr: optim.sgd(lr), lambda lr: optax.sgd(lr)),
    "momentum": (lambda lr: optim.momentum(lr), lambda lr: optax.sgd(lr, momentum=0.9)),
    "nesterov": (
        lambda lr: optim.momentum(lr, beta=0.8, nesterov=True),
        lambda lr: optax.sgd(lr, momentum=0.8, nesterov=True),
    ),
    "adam": (lambda lr: optim.adam(lr), lambda lr: optax.adam(lr)),
    "adamw": (
        lambda lr: optim.adamw(lr, b1=0.8, b2=0.99, eps=1e-6, weight_decay=0.1),
        lambda lr: optax.adamw(lr, b1=0.8, b2=0.99, eps=1e-6, weight_decay=0.1),
    ),
    "adamw_mask_fn": (
        lambda lr: optim.adamw(lr, weight_decay=0.1, mask=_matrices_only),
        lambda lr: optax.adamw(lr, weight_decay=0.1, mask=_matrices_only),
    ),
    "adamw_masked": (
        lambda lr: optim.adamw(lr, weight_decay=0.1, mask=MASK),
        lambda lr: optax.adamw(lr, weight_decay=0.1, mask=MASK),
    ),
}


def _assert_trees_close(a, b, rtol=1e-6, atol=0.0):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=rtol, atol=atol)


@pytest.mark.parametrize("lr_kind", ["constant", "schedule"])
@pytest.mark.parametrize("name", sorted(TWINS))
def test_twin_equals_optax_over_50_jitted_steps(name, lr_kind):
    ours, theirs = TWINS[name]
    lr = LR if lr_kind == "constant" else _schedule()
    params = _params()
    grads = _grad_stream(params, STEPS)
    run = jax.jit(_run, static_argnums=0)
    got, want = run(ours(lr), params, grads), run(theirs(lr), params, grads)
    _assert_trees_close(got, want)
    moved = jax.tree.map(lambda x, y: float(jnp.max(jnp.abs(x - y))), got, params)
    assert max(jax.tree.leaves(moved)) > LR  # the comparison is not between two untouched copies


def test_adamw_mask_leaves_masked_out_parameters_undecayed(transform):
    params = _params()
    zero_grads = jax.tree.map(jnp.zeros_like, params)
    opt = optim.adamw(LR, weight_decay=0.1, mask=MASK)
    updates, _ = transform(opt.update)(zero_grads, opt.init(params), params)
    np.testing.assert_allclose(updates["hidden"]["w"], -LR * 0.1 * params["hidden"]["w"], rtol=1e-6)
    for leaf in (updates["hidden"]["b"], updates["out"]["w"], updates["out"]["b"]):
        assert not np.any(np.asarray(leaf))


def test_sgd_step_is_minus_learning_rate_times_gradient(transform):
    params = _params()
    grads = jax.tree.map(lambda g: g[0], _grad_stream(params, 1))
    opt = optim.sgd(LR)
    updates, state = transform(opt.update)(grads, opt.init(params), params)
    _assert_trees_close(updates, jax.tree.map(lambda g: -LR * g, grads))
    assert int(state.count) == 1


def test_momentum_velocity_under_constant_gradient_is_geometric_sum(transform):
    beta, steps = 0.5, 4
    params = {"w": jnp.ones((3,))}
    grads = {"w": jnp.array([1.0, -2.0, 0.25])}
    opt = optim.momentum(LR, beta=beta)
    update = transform(opt.update)
    state = opt.init(params)
    for _ in range(steps):
        updates, state = update(grads, state, params)
    geometric = (1 - beta**steps) / (1 - beta)
    np.testing.assert_allclose(state.velocity["w"], geometric * grads["w"], rtol=1e-6)
    np.testing.assert_allclose(updates["w"], -LR * geometric * grads["w"], rtol=1e-6)


def test_first_adam_step_has_size_learning_rate_whatever_the_gradient_scale(transform):
    params = {"w": jnp.zeros((4,))}
    grads = {"w": jnp.array([1e-3, -1.0, 1e3, -5.0])}
    opt = optim.adam(LR)
    updates, state = transform(opt.update)(grads, opt.init(params), params)
    np.testing.assert_allclose(updates["w"], -LR * jnp.sign(grads["w"]), rtol=1e-4)
    assert int(state.count) == 1


def test_adamw_update_without_params_raises():
    params = _params()
    opt = optim.adamw(LR)
    with pytest.raises(ValueError, match="expected params"):
        opt.update(params, opt.init(params))


def test_twin_state_is_a_namedtuple_of_arrays_with_the_params_structure():
    params = _params()
    state = optim.adam(LR).init(params)
    assert isinstance(state, optim.AdamState)
    assert jax.tree.structure(state.mu) == jax.tree.structure(params)
    assert all(isinstance(x, jax.Array) for x in jax.tree.leaves(state))


def test_twins_accept_a_zero_dimensional_array_learning_rate(transform):
    params = {"w": jnp.ones((2,))}
    opt = optim.sgd(jnp.asarray(0.5))
    updates, _ = transform(opt.update)(params, opt.init(params), params)
    np.testing.assert_allclose(updates["w"], -0.5 * params["w"], rtol=1e-6)


# make_schedule -------------------------------------------------------------------------------


def test_constant_schedule_is_the_learning_rate_at_every_step():
    fn = optim.make_schedule("constant", 0.3, total_steps=10)
    assert [float(fn(s)) for s in (0, 5, 100)] == pytest.approx([0.3, 0.3, 0.3])


def test_cosine_schedule_goes_from_lr_through_half_to_zero():
    fn = optim.make_schedule("cosine", 0.3, total_steps=100)
    assert float(fn(0)) == pytest.approx(0.3)
    assert float(fn(50)) == pytest.approx(0.15)
    assert float(fn(25)) == pytest.approx(0.15 * (1 + np.cos(np.pi / 4)))
    assert float(fn(100)) == pytest.approx(0.0, abs=1e-7)
    assert float(fn(150)) == pytest.approx(0.0, abs=1e-7)


def test_warmup_cosine_rises_linearly_then_decays_over_the_remaining_steps():
    fn = optim.make_schedule("warmup_cosine", 0.2, total_steps=110, warmup_steps=10)
    assert float(fn(0)) == pytest.approx(0.0, abs=1e-8)
    assert float(fn(5)) == pytest.approx(0.1)
    assert float(fn(10)) == pytest.approx(0.2)
    assert float(fn(60)) == pytest.approx(0.1)  # half way through the 100 cosine steps
    assert float(fn(110)) == pytest.approx(0.0, abs=1e-7)


def test_schedule_is_traceable_under_jit(transform):
    fn = optim.make_schedule("warmup_cosine", 0.2, total_steps=110, warmup_steps=10)
    assert float(transform(fn)(jnp.asarray(5))) == pytest.approx(0.1)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(name="linear", learning_rate=0.1, total_steps=10), "constant, cosine, warmup_cosine"),
        (dict(name="cosine", learning_rate=0.0, total_steps=10), "learning_rate"),
        (dict(name="cosine", learning_rate=0.1, total_steps=0), "total_steps"),
        (dict(name="constant", learning_rate=0.1, total_steps=10, warmup_steps=2), "warmup"),
        (dict(name="warmup_cosine", learning_rate=0.1, total_steps=10, warmup_steps=10), "< total"),
        (dict(name="warmup_cosine", learning_rate=0.1, total_steps=10, warmup_steps=-1), "warmup"),
    ],
)
def test_make_schedule_rejects_bad_arguments(kwargs, message):
    name = kwargs.pop("name")
    lr = kwargs.pop("learning_rate")
    with pytest.raises(ValueError, match=message):
        optim.make_schedule(name, lr, **kwargs)


# make_optimizer ------------------------------------------------------------------------------

MAKE_STEPS = 12
MAKE_CONFIGS = {
    "plain": dict(),
    "everything": dict(
        schedule="warmup_cosine",
        total_steps=MAKE_STEPS,
        warmup_steps=3,
        weight_decay=0.05,
        clip_norm=1.5,
    ),
}


@pytest.mark.parametrize("config", sorted(MAKE_CONFIGS))
@pytest.mark.parametrize("name", optim.OPTIMIZERS)
def test_make_optimizer_jaxnn_impl_equals_optax_impl(name, config):
    params = _params()
    grads = _grad_stream(params, MAKE_STEPS, seed=2)
    kwargs = dict(MAKE_CONFIGS[config])
    if name == "adam":
        kwargs.pop("weight_decay", None)  # adam takes none: adamw is Adam with weight decay
    ours, sched_ours = optim.make_optimizer(name, LR, impl="jaxnn", **kwargs)
    theirs, sched_theirs = optim.make_optimizer(name, LR, impl="optax", **kwargs)
    got, want = _run(ours, params, grads), _run(theirs, params, grads)
    _assert_trees_close(got, want)
    assert float(sched_ours(4)) == float(sched_theirs(4))


def test_make_optimizer_momentum_with_nesterov_flag_is_nesterov():
    params = _params()
    grads = _grad_stream(params, 5, seed=3)
    flagged, _ = optim.make_optimizer("momentum", LR, nesterov=True)
    named, _ = optim.make_optimizer("nesterov", LR)
    heavy_ball, _ = optim.make_optimizer("momentum", LR)
    _assert_trees_close(_run(flagged, params, grads), _run(named, params, grads))
    got, other = _run(flagged, params, grads), _run(heavy_ball, params, grads)
    assert not np.allclose(got["hidden"]["w"], other["hidden"]["w"])


def test_make_optimizer_clip_norm_caps_the_global_norm_of_an_sgd_step(transform):
    params = _params()
    huge = jax.tree.map(lambda p: 100.0 * jnp.ones_like(p), params)
    opt, _ = optim.make_optimizer("sgd", 1.0, clip_norm=2.0)
    updates, _ = transform(opt.update)(huge, opt.init(params), params)
    assert float(optax.global_norm(updates)) == pytest.approx(2.0, rel=1e-6)


def test_make_optimizer_sgd_weight_decay_adds_lambda_theta_to_the_gradient(transform):
    params = _params()
    zero_grads = jax.tree.map(jnp.zeros_like, params)
    opt, _ = optim.make_optimizer("sgd", LR, weight_decay=0.1)
    updates, _ = transform(opt.update)(zero_grads, opt.init(params), params)
    _assert_trees_close(updates, jax.tree.map(lambda p: -LR * 0.1 * p, params))


def test_make_optimizer_adam_with_weight_decay_raises_pointing_to_adamw():
    with pytest.raises(ValueError, match="use 'adamw'"):
        optim.make_optimizer("adam", LR, weight_decay=0.1)


def test_make_optimizer_adamw_is_decoupled_weight_decay():
    params = _params()
    grads = _grad_stream(params, 6, seed=4)
    adamw, _ = optim.make_optimizer("adamw", LR, weight_decay=0.1)
    got = _run(adamw, params, grads)
    _assert_trees_close(got, _run(optax.adamw(LR, weight_decay=0.1), params, grads))
    assert not np.allclose(got["out"]["w"], _run(optax.adam(LR), params, grads)["out"]["w"])


def test_make_optimizer_schedule_fn_is_the_rate_the_optimizer_applies():
    params = {"w": jnp.zeros((2,))}
    grads = {"w": jnp.ones((2,))}
    opt, schedule_fn = optim.make_optimizer("sgd", 0.4, schedule="cosine", total_steps=8)
    state = opt.init(params)
    for step in range(3):
        updates, state = opt.update(grads, state, params)
        np.testing.assert_allclose(updates["w"], -float(schedule_fn(step)), rtol=1e-6)


@pytest.mark.parametrize(
    "args, kwargs, message",
    [
        (("rmsprop", 0.1), {}, "sgd, momentum, nesterov, adam, adamw"),
        (("adam", 0.1), dict(impl="torch"), "optax, jaxnn"),
        (("adam", 0.1), dict(schedule="step"), "constant, cosine, warmup_cosine"),
        (("adam", 0.0), {}, "learning_rate"),
        (("sgd", -1e-3), {}, "learning_rate"),
        (("adamw", 0.1), dict(weight_decay=-0.1), "weight_decay"),
        (("sgd", 0.1), dict(clip_norm=0.0), "clip_norm"),
        (("adam", 0.1), dict(nesterov=True), "nesterov"),
    ],
)
def test_make_optimizer_rejects_bad_arguments(args, kwargs, message):
    with pytest.raises(ValueError, match=message):
        optim.make_optimizer(*args, **kwargs)


@pytest.mark.parametrize(
    "make",
    [
        lambda: optim.sgd(0.0),
        lambda: optim.sgd("0.1"),
        lambda: optim.sgd(jnp.array([0.1, 0.2])),
        lambda: optim.momentum(0.1, beta=1.0),
        lambda: optim.adam(0.1, b2=1.5),
        lambda: optim.adam(0.1, eps=0.0),
        lambda: optim.adamw(0.1, weight_decay=-1.0),
    ],
)
def test_twins_reject_out_of_range_hyperparameters(make):
    with pytest.raises(ValueError, match="expected"):
        make()


# nanoGPT's recipe: a cosine floor, a decay length apart from the run, Adam's beta2 and weight
# decay on the matrices only.


@pytest.mark.parametrize("name", ["cosine", "warmup_cosine"])
def test_a_cosine_schedule_ends_at_min_lr_and_stays_there(name):
    warmup = 10 if name == "warmup_cosine" else 0
    fn = optim.make_schedule(name, 1e-3, total_steps=100, warmup_steps=warmup, min_lr=1e-4)
    assert float(fn(100)) == pytest.approx(1e-4) and float(fn(500)) == pytest.approx(1e-4)
    assert float(fn(warmup)) == pytest.approx(1e-3)
    floorless = optim.make_schedule(name, 1e-3, total_steps=100, warmup_steps=warmup)
    assert float(floorless(100)) == 0.0 and float(fn(50)) > float(floorless(50))


def test_decay_steps_set_the_schedule_apart_from_the_run_length():
    _, fn = optim.make_optimizer(
        "adamw", 1e-3, schedule="cosine", total_steps=1000, decay_steps=100, min_lr=1e-4
    )
    _, whole = optim.make_optimizer("adamw", 1e-3, schedule="cosine", total_steps=1000)
    assert float(fn(100)) == pytest.approx(1e-4) and float(fn(900)) == pytest.approx(1e-4)
    assert float(whole(100)) > 9e-4


@pytest.mark.parametrize("impl", ["optax", "jaxnn"])
def test_beta2_is_adams_second_moment_decay(impl):
    params = {"w": jnp.ones((3, 2))}
    grads = [{"w": jnp.full((3, 2), g)} for g in (1.0, 0.1, 3.0)]

    def updates(tx):
        state, out = tx.init(params), []
        for g in grads:
            u, state = tx.update(g, state, params)
            out.append(u["w"])
        return np.asarray(out)

    ours, _ = optim.make_optimizer("adam", 1e-2, beta2=0.99, impl=impl)
    reference = optax.adam if impl == "optax" else optim.adam  # twin = optax: tested above
    np.testing.assert_array_equal(updates(ours), updates(reference(1e-2, b2=0.99)))
    default, _ = optim.make_optimizer("adam", 1e-2, impl=impl)
    assert not np.allclose(updates(ours), updates(default))


@pytest.mark.parametrize("name", ["adamw", "sgd", "momentum"])
@pytest.mark.parametrize("impl", ["optax", "jaxnn"])
def test_decay_mask_matrices_decays_the_matrices_and_spares_biases_and_scales(name, impl):
    params = {"dense": {"w": jnp.ones((4, 3)), "b": jnp.ones(3)}, "norm": {"scale": jnp.ones(3)}}
    zero = jax.tree_util.tree_map(jnp.zeros_like, params)
    for mask, decayed in (("matrices", {"w"}), ("all", {"w", "b", "scale"})):
        tx, _ = optim.make_optimizer(name, 0.1, weight_decay=0.5, decay_mask=mask, impl=impl)
        u, _ = tx.update(zero, tx.init(params), params)
        moved = {
            path[-1].key
            for path, leaf in jax.tree_util.tree_flatten_with_path(u)[0]
            if float(jnp.abs(leaf).max()) > 0
        }
        assert moved == decayed, (mask, moved)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"name": "sgd", "beta2": 0.99}, "beta2 applies to 'adam' and 'adamw'"),
        ({"name": "adam", "beta2": 1.0}, r"expected beta2 in \(0, 1\)"),
        ({"name": "adamw", "min_lr": 1e-4}, "min_lr applies to the cosine schedules"),
        ({"name": "adamw", "schedule": "cosine", "min_lr": 1.0}, "expected min_lr below"),
        ({"name": "adamw", "decay_mask": "biases"}, "expected decay_mask in all, matrices"),
    ],
)
def test_recipe_settings_that_do_not_apply_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        optim.make_optimizer(learning_rate=1e-2, total_steps=10, **kwargs)
