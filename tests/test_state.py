import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxnn import models
from jaxnn.train.state import create_train_state, params_sha256, step_key


def _state(seed=0):
    model = models.build("mlp", input_dim=4, hidden=(8,), num_classes=3)
    return create_train_state(model, optax.adam(1e-3), seed)


def test_train_state_is_a_pytree_of_arrays():
    leaves = jax.tree.leaves(_state())
    assert leaves and all(isinstance(x, jax.Array) for x in leaves)


def test_same_seed_gives_identical_params_and_different_seed_does_not():
    assert params_sha256(_state(0).params) == params_sha256(_state(0).params)
    assert params_sha256(_state(0).params) != params_sha256(_state(1).params)


def test_params_sha256_sees_a_single_flipped_bit():
    params = {"w": np.zeros((3, 3), np.float32)}
    flipped = params["w"].copy()
    flipped.view(np.uint32)[1, 2] ^= 1
    assert params_sha256(params) != params_sha256({"w": flipped})


def test_params_sha256_sees_dtype_and_leaf_names():
    a = {"w": np.zeros(4, np.float32)}
    assert params_sha256(a) != params_sha256({"w": np.zeros(4, np.int32)})
    assert params_sha256(a) != params_sha256({"v": np.zeros(4, np.float32)})


def test_step_key_is_fold_in_of_base_key_and_step():
    state = _state()
    state5 = state._replace(step=jnp.asarray(5, jnp.int32))
    np.testing.assert_array_equal(step_key(state5), jax.random.fold_in(state.rng, 5))
    assert not np.array_equal(step_key(state5), step_key(state))


def test_the_compiled_state_equals_the_plain_construction_at_both_ends_of_the_seed_range():
    """create_train_state compiles one program; it must give what the plain calls give, for the
    smallest and the largest seed FitConfig accepts (a traced int32 seed cannot hold 2**32 - 1)."""
    model = models.build("cnn", input_shape=(8, 8, 1), channels=(4,), hidden=(8,), batch_norm=True)
    module = models.get("cnn")
    tx = optax.adam(1e-3)
    for seed in (0, 2**32 - 1):
        state = create_train_state(model, tx, seed)
        init_key, base_key = jax.random.split(jax.random.PRNGKey(seed))
        params = module.init(init_key, model.cfg)
        want = (params, tx.init(params), base_key, module.init_state(model.cfg))
        got = (state.params, state.opt_state, state.rng, state.model_state)
        assert jax.tree.structure(got) == jax.tree.structure(want)
        for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
        assert int(state.step) == 0
