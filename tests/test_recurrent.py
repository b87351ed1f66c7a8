import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnn.layers import recurrent

D, H, B, T = 3, 4, 2, 5


def _x(seed=0, shape=(B, T, D), dtype=jnp.float32):
    return jax.random.normal(jax.random.key(seed), shape, dtype)


def _randomized(tree, seed):
    """Replace every leaf by random values so zero biases cannot hide a layout mistake."""
    leaves, treedef = jax.tree.flatten(tree)
    keys = jax.random.split(jax.random.key(seed), len(leaves))
    new = [
        0.5 * jax.random.normal(k, leaf.shape, leaf.dtype)
        for k, leaf in zip(keys, leaves, strict=True)
    ]
    return jax.tree.unflatten(treedef, new)


def _flax_params(cell, seed=1):
    x = jnp.zeros((B, D))
    carry = cell.initialize_carry(jax.random.key(0), x.shape)
    return _randomized(cell.init(jax.random.key(0), carry, x), seed)


def _dense(kernels, biases):
    return {"w": jnp.concatenate(kernels, axis=1), "b": jnp.concatenate(biases)}


def _from_flax_simple(v):
    p = v["params"]
    return {
        "input": {"w": p["i"]["kernel"], "b": p["i"]["bias"]},
        "hidden": {"w": p["h"]["kernel"], "b": jnp.zeros((H,))},
    }


def _from_flax_gru(v):
    p = v["params"]
    zeros = jnp.zeros((H,))
    return {
        "input": _dense(
            [p[g]["kernel"] for g in ("ir", "iz", "in")], [p[g]["bias"] for g in ("ir", "iz", "in")]
        ),
        "hidden": _dense(
            [p[g]["kernel"] for g in ("hr", "hz", "hn")], [zeros, zeros, p["hn"]["bias"]]
        ),
    }


def _from_flax_lstm(v):
    p = v["params"]
    gates = ("i", "f", "g", "o")
    return {
        "input": _dense([p["i" + g]["kernel"] for g in gates], [jnp.zeros((H,))] * 4),
        "hidden": _dense(
            [p["h" + g]["kernel"] for g in gates], [p["h" + g]["bias"] for g in gates]
        ),
    }


# --- equality with flax cells given the same weights -------------------------------------------


def test_rnn_cell_equals_flax_simple_cell(transform):
    v = _flax_params(nn.SimpleCell(features=H))
    h, x = _x(2, (B, H)), _x(3, (B, D))
    want, _ = nn.SimpleCell(features=H).apply(v, h, x)
    got = transform(recurrent.rnn_cell)(_from_flax_simple(v), h, x)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_gru_cell_equals_flax_gru_cell(transform):
    v = _flax_params(nn.GRUCell(features=H))
    h, x = _x(2, (B, H)), _x(3, (B, D))
    want, _ = nn.GRUCell(features=H).apply(v, h, x)
    got = transform(recurrent.gru_cell)(_from_flax_gru(v), h, x)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("flax_cell", [nn.LSTMCell, nn.OptimizedLSTMCell])
def test_lstm_cell_equals_flax_lstm_cells(transform, flax_cell):
    v = _flax_params(flax_cell(features=H))
    h, c, x = _x(2, (B, H)), _x(4, (B, H)), _x(3, (B, D))
    (want_c, want_h), _ = flax_cell(features=H).apply(v, (c, h), x)  # flax carries (c, h)
    got_h, got_c = transform(recurrent.lstm_cell)(_from_flax_lstm(v), (h, c), x)
    np.testing.assert_allclose(got_h, want_h, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got_c, want_c, rtol=1e-5, atol=1e-6)


def test_gru_sequence_equals_flax_rnn_of_gru_cell(transform):
    cell = nn.GRUCell(features=H)
    v = _flax_params(cell)
    x = _x()
    rnn_vars = {"params": {"cell": v["params"]}}  # nn.RNN nests the cell's params under "cell"
    want_carry, want_out = nn.RNN(cell, return_carry=True).apply(rnn_vars, x)
    got_out, got_h = transform(recurrent.gru)(_from_flax_gru(v), x)
    np.testing.assert_allclose(got_out, want_out, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got_h, want_carry, rtol=1e-5, atol=1e-6)


# --- scan equals a Python loop of cells ---------------------------------------------------------

CELLS = {
    "rnn": (recurrent.init_rnn, recurrent.rnn, recurrent.rnn_cell),
    "gru": (recurrent.init_gru, recurrent.gru, recurrent.gru_cell),
    "lstm": (recurrent.init_lstm, recurrent.lstm, recurrent.lstm_cell),
}


def _loop(name, params, x):
    _, _, cell = CELLS[name]
    h = jnp.zeros((x.shape[0], H))
    state = (h, h) if name == "lstm" else h
    outputs = []
    for t in range(x.shape[1]):
        state = cell(params, state, x[:, t])
        outputs.append(state[0] if name == "lstm" else state)
    return jnp.stack(outputs, axis=1), state


@pytest.mark.parametrize("name", sorted(CELLS))
def test_scan_over_sequence_equals_python_loop_of_cells(transform, name):
    init, run, _ = CELLS[name]
    params = _randomized(init(jax.random.key(0), D, H), 5)
    x = _x()
    want_out, want_state = _loop(name, params, x)
    got_out, got_state = transform(run)(params, x)
    assert got_out.shape == (B, T, H)
    np.testing.assert_allclose(got_out, want_out, rtol=1e-5, atol=1e-6)
    for got, want in zip(jax.tree.leaves(got_state), jax.tree.leaves(want_state), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", sorted(CELLS))
def test_vmap_of_one_sequence_equals_batched_call(name):
    init, run, _ = CELLS[name]
    params = init(jax.random.key(0), D, H)
    x = _x()
    want_out, want_state = run(params, x)
    got_out, got_state = jax.vmap(lambda s: run(params, s))(x)
    np.testing.assert_allclose(got_out, want_out, rtol=1e-5, atol=1e-6)
    for got, want in zip(jax.tree.leaves(got_state), jax.tree.leaves(want_state), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


# --- book properties of the hidden state ---------------------------------------------------------


@pytest.mark.parametrize("name", sorted(CELLS))
def test_final_state_depends_on_first_token(name):
    init, run, _ = CELLS[name]
    params = init(jax.random.key(0), D, H)
    x = 0.3 * _x(7, (1, 8, D))  # small inputs keep the tanh units away from saturation
    x_changed = x.at[:, 0].add(0.5)
    h_final = jax.tree.leaves(run(params, x)[1])[0]
    h_changed = jax.tree.leaves(run(params, x_changed)[1])[0]
    assert float(jnp.max(jnp.abs(h_final - h_changed))) > 1e-3


@pytest.mark.parametrize("name", sorted(CELLS))
def test_output_at_step_t_ignores_later_inputs(name):
    init, run, _ = CELLS[name]
    params = init(jax.random.key(0), D, H)
    x = _x()
    x_changed = x.at[:, 3:].add(5.0)
    out, out_changed = run(params, x)[0], run(params, x_changed)[0]
    np.testing.assert_array_equal(out[:, :3], out_changed[:, :3])
    assert float(jnp.max(jnp.abs(out[:, 3:] - out_changed[:, 3:]))) > 1e-3


def test_gru_continued_from_a_state_equals_one_long_run(transform):
    params = recurrent.init_gru(jax.random.key(0), D, H)
    x = _x()
    run = transform(recurrent.gru)
    out, h = run(params, x)
    out_a, h_a = run(params, x[:, :2])
    out_b, h_b = run(params, x[:, 2:], h0=h_a)
    np.testing.assert_allclose(jnp.concatenate([out_a, out_b], axis=1), out, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(h_b, h, rtol=1e-5, atol=1e-6)


def test_lstm_continued_from_a_state_equals_one_long_run(transform):
    params = recurrent.init_lstm(jax.random.key(0), D, H)
    x = _x()
    run = transform(recurrent.lstm)
    out, (h, c) = run(params, x)
    _, (h_a, c_a) = run(params, x[:, :2])
    out_b, (h_b, c_b) = run(params, x[:, 2:], h0=h_a, c0=c_a)
    np.testing.assert_allclose(out_b, out[:, 2:], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(c_b, c, rtol=1e-5, atol=1e-6)


# --- initialization ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(CELLS))
def test_recurrent_weights_are_orthogonal_per_gate(name):
    init, _, _ = CELLS[name]
    w = init(jax.random.key(0), D, H)["hidden"]["w"]
    for block in jnp.split(w, w.shape[1] // H, axis=1):
        np.testing.assert_allclose(block.T @ block, jnp.eye(H), atol=1e-5)


def test_lstm_forget_gate_bias_starts_at_one():
    params = recurrent.init_lstm(jax.random.key(0), D, H)
    b = params["input"]["b"]
    np.testing.assert_array_equal(b[H : 2 * H], jnp.ones(H))
    np.testing.assert_array_equal(jnp.concatenate([b[:H], b[2 * H :]]), jnp.zeros(3 * H))


# --- bad input -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(CELLS))
def test_sequence_of_wrong_rank_raises(name):
    init, run, _ = CELLS[name]
    with pytest.raises(ValueError, match=r"expected rank 2 or 3, got rank 4"):
        run(init(jax.random.key(0), D, H), jnp.zeros((B, T, 1, D)))


@pytest.mark.parametrize("name", sorted(CELLS))
def test_input_width_mismatch_raises(name):
    init, run, _ = CELLS[name]
    with pytest.raises(ValueError, match=r"feature size D=3 .* got shape \(2, 5, 4\)"):
        run(init(jax.random.key(0), D, H), jnp.zeros((B, T, D + 1)))


def test_integer_sequence_raises():
    params = recurrent.init_gru(jax.random.key(0), D, H)
    with pytest.raises(ValueError, match="expected floating-point input"):
        recurrent.gru(params, jnp.zeros((B, T, D), jnp.int32))


def test_initial_state_of_wrong_shape_raises():
    params = recurrent.init_lstm(jax.random.key(0), D, H)
    with pytest.raises(ValueError, match=r"expected c0 of shape \(2, 4\), got shape \(2, 5\)"):
        recurrent.lstm(params, _x(), c0=jnp.zeros((B, H + 1)))


def test_cell_state_batch_mismatch_raises():
    params = recurrent.init_gru(jax.random.key(0), D, H)
    with pytest.raises(ValueError, match=r"expected hidden state h of shape \(2, 4\)"):
        recurrent.gru_cell(params, jnp.zeros((3, H)), jnp.zeros((B, D)))


def test_init_with_a_zero_hidden_size_raises():
    with pytest.raises(ValueError, match="out_dim to be a positive integer, got 0"):
        recurrent.init_rnn(jax.random.key(0), D, 0)


# --- gradient-check registry ---------------------------------------------------------------------


def _case(name, with_state=False):
    def make_case():
        init, run, cell = CELLS[name]
        params = init(jax.random.key(0), 2, 2, dtype=jnp.float64)
        x = jax.random.normal(jax.random.key(1), (1, 3, 2), jnp.float64)  # (B, T, D)
        if not with_state:

            def f(p, x):
                out, state = run(p, x)
                return jnp.concatenate(
                    [out.reshape(-1)] + [s.reshape(-1) for s in jax.tree.leaves(state)]
                )

            return f, (params, x)
        h = jax.random.normal(jax.random.key(2), (1, 2), jnp.float64)  # (B, H)
        state = (h, 0.5 * h) if name == "lstm" else h
        f = lambda p, s, x_t: jnp.concatenate(
            [a.reshape(-1) for a in jax.tree.leaves(cell(p, s, x_t))]
        )
        return f, (params, state, x[:, 0])

    return make_case


GRAD_CASES = {
    "jaxnn.layers.recurrent.rnn": _case("rnn"),
    "jaxnn.layers.recurrent.gru": _case("gru"),
    "jaxnn.layers.recurrent.lstm": _case("lstm"),
    "jaxnn.layers.recurrent.rnn_cell": _case("rnn", with_state=True),
    "jaxnn.layers.recurrent.gru_cell": _case("gru", with_state=True),
    "jaxnn.layers.recurrent.lstm_cell": _case("lstm", with_state=True),
}
