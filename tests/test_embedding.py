import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnn.layers.embedding import (
    embedding,
    init_embedding,
    init_learned_positions,
    learned_positions,
    sinusoidal_positions,
    sinusoidal_table,
)

V, D = 7, 4


def _params(seed=0):
    return init_embedding(jax.random.key(seed), V, D)


def test_init_embedding_makes_one_row_per_token():
    params = _params()
    assert params["table"].shape == (V, D)
    assert len(np.unique(np.asarray(params["table"]), axis=0)) == V


def test_embedding_equals_one_hot_times_table(transform):
    params = _params()
    ids = jnp.array([[0, 3, 6], [2, 2, 5]])  # (B, T)
    want = jax.nn.one_hot(ids, V) @ params["table"]  # (B, T, D)
    got = transform(embedding)(params, ids)
    assert got.shape == (2, 3, D)
    np.testing.assert_allclose(got, want, rtol=1e-6)


def test_vmap_of_unbatched_embedding_equals_batched_call():
    params = _params()
    ids = jnp.array([[1, 4], [6, 0], [3, 3]])  # (B, T)
    got = jax.vmap(lambda seq: embedding(params, seq))(ids)
    np.testing.assert_array_equal(got, embedding(params, ids))


def test_embedding_gradient_counts_uses_of_each_row(transform):
    ids = jnp.array([[1, 1, 4], [1, 6, 4]])  # id 1 three times, 4 twice, 6 once
    grad = transform(jax.grad(lambda t: embedding({"table": t}, ids).sum()))(_params()["table"])
    counts = np.bincount(np.asarray(ids).ravel(), minlength=V).astype(np.float32)
    np.testing.assert_array_equal(grad, np.repeat(counts[:, None], D, axis=1))


def test_embedding_rejects_float_ids():
    with pytest.raises(ValueError, match="expected integer token ids, got dtype float32"):
        embedding(_params(), jnp.array([[1.0, 2.0]]))


def test_embedding_rejects_ids_outside_vocabulary():
    with pytest.raises(ValueError, match=r"token ids in \[0, 7\), got values in \[0, 7\]"):
        embedding(_params(), jnp.array([0, 7]))


def test_embedding_rejects_params_without_table():
    with pytest.raises(ValueError, match="expected params with key 'table'"):
        embedding({"w": jnp.zeros((V, D))}, jnp.array([0]))


@pytest.mark.parametrize("dim", [6, 5])
def test_sinusoidal_positions_match_the_formula(dim):
    table = np.asarray(sinusoidal_positions(9, dim))
    assert table.shape == (9, dim)
    for p in (0, 3, 8):
        for j in range(dim):
            angle = p / 10000 ** ((j - j % 2) / dim)
            want = math.sin(angle) if j % 2 == 0 else math.cos(angle)
            assert table[p, j] == pytest.approx(want, abs=1e-6)


def test_sinusoidal_table_is_the_positions_in_float64_rounded_once_to_float32():
    table = sinusoidal_table(50, 7)
    assert table.dtype == np.float64 and table.shape == (50, 7)
    assert table[3, 0] == pytest.approx(math.sin(3.0), abs=1e-12)  # float64, not float32
    assert table[3, 1] == pytest.approx(math.cos(3.0), abs=1e-12)
    np.testing.assert_array_equal(np.asarray(sinusoidal_positions(50, 7)), table.astype(np.float32))


def test_sinusoidal_positions_are_distinct_for_every_position():
    table = np.asarray(sinusoidal_positions(64, 8))
    distances = np.linalg.norm(table[:, None] - table[None, :], axis=-1)  # (T, T)
    assert distances[~np.eye(64, dtype=bool)].min() > 1e-2


def test_sinusoidal_offset_is_a_rotation_of_each_frequency_pair():
    table = np.asarray(sinusoidal_positions(20, 8), np.float64)
    offset = 5
    for i in range(4):
        w = 1.0 / 10000 ** (2 * i / 8)
        c, s = math.cos(offset * w), math.sin(offset * w)
        rotation = np.array([[c, -s], [s, c]])  # (sin, cos)(p) -> (sin, cos)(p + offset)
        pairs = table[:, 2 * i : 2 * i + 2]  # (T, 2)
        np.testing.assert_allclose(pairs[:-offset] @ rotation, pairs[offset:], atol=1e-5)


def test_sinusoidal_positions_reject_zero_length():
    with pytest.raises(ValueError, match="length to be a positive integer, got 0"):
        sinusoidal_positions(0, 4)


def test_learned_positions_are_the_first_rows_of_the_table(transform):
    params = init_learned_positions(jax.random.key(1), 10, D)
    assert params["table"].shape == (10, D)
    got = transform(lambda p: learned_positions(p, 6))(params)
    np.testing.assert_array_equal(got, params["table"][:6])


def test_learned_positions_longer_than_table_raise():
    params = init_learned_positions(jax.random.key(1), 10, D)
    with pytest.raises(ValueError, match="at most 10 positions .* got length 11"):
        learned_positions(params, 11)


GRAD_CASES = {
    "jaxnn.layers.embedding.embedding": lambda: (
        lambda table: embedding({"table": table}, jnp.array([[1, 1, 4], [0, 6, 2]])),
        (jax.random.normal(jax.random.key(0), (V, 3), jnp.float64),),
    ),
    "jaxnn.layers.embedding.learned_positions": lambda: (
        lambda table: learned_positions({"table": table}, 3),
        (jax.random.normal(jax.random.key(0), (5, 2), jnp.float64),),
    ),
}

NOT_DIFFERENTIABLE = {
    "jaxnn.layers.embedding.sinusoidal_positions": "a fixed table of integer arguments; no "
    "array input to differentiate",
    "jaxnn.layers.embedding.sinusoidal_table": "the same fixed table, as a NumPy array",
}
