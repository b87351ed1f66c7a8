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
