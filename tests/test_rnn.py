import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxnn.layers.recurrent import gru, lstm
from jaxnn.models import rnn as model

B = 3


def _cfg(**kw):
    return model.Config(**{"input_shape": (12,), "num_classes": 5, "hidden": 6, **kw})


def _x(cfg, seed=0):
    return jax.random.normal(jax.random.key(seed), (B, *cfg.input_shape))


@pytest.mark.parametrize("cell", ["gru", "lstm", "rnn"])
def test_apply_returns_one_row_of_logits_per_example(transform, cell):
    cfg = _cfg(cell=cell)
    params = model.init(jax.random.key(0), cfg)
    logits = transform(lambda p, x: model.apply(p, x, cfg=cfg)[0])(params, _x(cfg))
    assert logits.shape == (B, 5)
    assert np.isfinite(np.asarray(logits)).all()


def test_flat_input_is_read_as_chunks_of_consecutive_values(transform):
    cfg = _cfg(chunk=4)
    params = model.init(jax.random.key(0), cfg)
    x = _x(cfg)
    _, h_last = gru(params["cell_0"], x.reshape(B, 3, 4))  # (B, H)
    want = h_last @ params["head"]["w"] + params["head"]["b"]
    got = transform(lambda p, x: model.apply(p, x, cfg=cfg)[0])(params, x)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_default_reads_one_scalar_per_step():
    cfg = _cfg()
    assert cfg.sequence_shape == (12, 1)
    params = model.init(jax.random.key(0), cfg)
    assert params["cell_0"]["input"]["w"].shape == (1, 3 * 6)


def test_lstm_classifier_reads_the_hidden_state_not_the_cell_state():
    cfg = _cfg(cell="lstm", input_shape=(4, 3))
    params = model.init(jax.random.key(0), cfg)
    x = _x(cfg)
    _, (h, _) = lstm(params["cell_0"], x)
    want = h @ params["head"]["w"] + params["head"]["b"]
    np.testing.assert_allclose(model.apply(params, x, cfg=cfg)[0], want, rtol=1e-5, atol=1e-6)


def test_stacked_layers_feed_outputs_to_the_next_layer():
    cfg = _cfg(hidden=(6, 5), chunk=3)
    params = model.init(jax.random.key(0), cfg)
    assert sorted(params) == ["cell_0", "cell_1", "head"]
    x = _x(cfg)
    outputs, _ = gru(params["cell_0"], x.reshape(B, 4, 3))  # (B, T, H)
    _, h_last = gru(params["cell_1"], outputs)
    want = h_last @ params["head"]["w"] + params["head"]["b"]
    np.testing.assert_allclose(model.apply(params, x, cfg=cfg)[0], want, rtol=1e-5, atol=1e-6)


def test_vmap_of_single_example_calls_equals_batched_call():
    cfg = _cfg(chunk=2)
    params = model.init(jax.random.key(0), cfg)
    x = _x(cfg)
    one = lambda xi: model.apply(params, xi[None], cfg=cfg)[0][0]
    np.testing.assert_allclose(jax.vmap(one)(x), model.apply(params, x, cfg=cfg)[0], rtol=1e-5)


def test_logits_depend_on_the_first_step_of_the_sequence():
    cfg = _cfg(chunk=2)
    params = model.init(jax.random.key(0), cfg)
    x = _x(cfg)
    changed = model.apply(params, x.at[:, 0].add(1.0), cfg=cfg)[0]
    assert float(jnp.min(jnp.max(jnp.abs(changed - model.apply(params, x, cfg=cfg)[0]), -1))) > 1e-4


def test_gru_param_count_matches_the_gate_formula():
    cfg = _cfg(chunk=3, hidden=6)  # D = 3, H = 6, C = 5
    d, h, c = 3, 6, 5
    want = 3 * (d * h + h * h + 2 * h) + h * c + c
    assert model.param_count(model.init(jax.random.key(0), cfg)) == want


def test_dropout_changes_logits_in_training_only(transform):
    cfg = _cfg(chunk=4, dropout=0.5)
    params = model.init(jax.random.key(0), cfg)
    x = _x(cfg)
    f = transform(lambda key: model.apply(params, x, cfg=cfg, train=True, key=key)[0])
    evaluate = model.apply(params, x, cfg=cfg)[0]
    assert float(jnp.max(jnp.abs(f(jax.random.key(1)) - f(jax.random.key(2))))) > 1e-3
    np.testing.assert_array_equal(
        model.apply(params, x, cfg=cfg, key=jax.random.key(1))[0], evaluate
    )


def test_gru_classifier_learns_a_label_stored_in_the_first_step():
    """The label is the sign of the first value; only a state that carries it can be right."""
    cfg = model.Config(input_shape=(8,), num_classes=2, hidden=8)
    x = jax.random.normal(jax.random.key(1), (64, 8))
    y = (x[:, 0] > 0).astype(jnp.int32)
    params = model.init(jax.random.key(0), cfg)
    opt = optax.adam(3e-2)
    state = opt.init(params)

    @jax.jit
    def step(params, state):
        loss = lambda p: optax.softmax_cross_entropy_with_integer_labels(
            model.apply(p, x, cfg=cfg)[0], y
        ).mean()
        grads = jax.grad(loss)(params)
        updates, state = opt.update(grads, state)
        return optax.apply_updates(params, updates), state

    for _ in range(150):
        params, state = step(params, state)
    accuracy = float(jnp.mean(jnp.argmax(model.apply(params, x, cfg=cfg)[0], -1) == y))
    assert accuracy >= 0.95


class _Info:
    def __init__(self, task="classification", input_shape=(40,), num_classes=10):
        self.task, self.input_shape, self.num_classes = task, input_shape, num_classes


def test_config_for_takes_input_shape_and_classes_from_the_dataset():
    cfg = model.config_for(_Info(input_shape=(40,), num_classes=7), cell="lstm", chunk=4)
    assert (cfg.input_shape, cfg.num_classes, cfg.cell, cfg.chunk) == ((40,), 7, "lstm", 4)
    assert dataclasses.replace(cfg, hidden=3).hidden == (3,)


def test_config_for_rejects_a_regression_dataset():
    with pytest.raises(ValueError, match="expected a classification or language-model dataset"):
        model.config_for(_Info(task="regression"))


def _lm(**overrides):
    cfg = model.config_for(_Info(task="language_model", input_shape=(12,), num_classes=7))
    return dataclasses.replace(cfg, hidden=(16,), embed_dim=8, **overrides)


@pytest.mark.parametrize("cell", ["gru", "lstm", "rnn"])
def test_a_language_model_gives_next_token_logits_at_every_position(cell):
    cfg = _lm(cell=cell)
    assert cfg.task == "language_model"
    params = model.init(jax.random.key(0), cfg)
    ids = jnp.asarray(np.random.default_rng(0).integers(0, 7, (3, 12)), jnp.int32)
    logits, _ = model.apply(params, ids, cfg=cfg)
    assert logits.shape == (3, 12, 7) and bool(jnp.isfinite(logits).all())
    # causal by construction: the logits at position t do not depend on tokens after t
    later = ids.at[:, 6:].set((ids[:, 6:] + 1) % 7)
    changed, _ = model.apply(params, later, cfg=cfg)
    np.testing.assert_allclose(logits[:, :6], changed[:, :6], rtol=1e-6, atol=1e-6)
    assert not np.allclose(logits[:, 6:], changed[:, 6:])


def test_generate_greedy_continues_with_the_argmax_of_the_full_forward_pass():
    cfg = _lm()
    params = model.init(jax.random.key(1), cfg)
    prompt = jnp.asarray([1, 2, 3], jnp.int32)
    out = model.generate(params, prompt, cfg=cfg, key=jax.random.key(0), length=5, temperature=0)
    assert out.shape == (8,) and list(out[:3]) == [1, 2, 3]
    for t in range(3, 8):  # each new token is the argmax after the tokens before it
        logits, _ = model.apply(params, out[None, :t], cfg=cfg)
        assert int(out[t]) == int(jnp.argmax(logits[0, -1]))


def test_generate_refuses_a_classifier_and_an_empty_prompt():
    cfg = model.Config(input_shape=(12,), num_classes=3, hidden=(8,))
    params = model.init(jax.random.key(0), cfg)
    with pytest.raises(ValueError, match="expected a language model"):
        model.generate(params, jnp.asarray([1]), cfg=cfg, key=jax.random.key(0), length=2)
    lm = _lm()
    with pytest.raises(ValueError, match="non-empty prompt"):
        model.generate(
            model.init(jax.random.key(0), lm), jnp.zeros((0,), jnp.int32), cfg=lm,
            key=jax.random.key(0), length=2,
        )  # fmt: skip


def test_config_for_rejects_unknown_fields():
    with pytest.raises(ValueError, match=r"got \['width'\]"):
        model.config_for(_Info(), width=3)


def test_config_rejects_chunk_not_dividing_length():
    with pytest.raises(
        ValueError, match="expected chunk to divide the input length 12, got chunk=5"
    ):
        _cfg(chunk=5)


def test_config_rejects_unknown_cell():
    with pytest.raises(ValueError, match=r"expected cell in \['gru', 'lstm', 'rnn'\], got 'tcn'"):
        _cfg(cell="tcn")


def test_apply_rejects_input_of_wrong_shape():
    cfg = _cfg()
    params = model.init(jax.random.key(0), cfg)
    with pytest.raises(ValueError, match=r"expected input of shape \(B, 12\), got shape \(3, 10\)"):
        model.apply(params, jnp.zeros((B, 10)), cfg=cfg)[0]


def test_apply_rejects_params_of_another_config():
    params = model.init(jax.random.key(0), _cfg(hidden=(6, 6)))
    with pytest.raises(ValueError, match="expected param keys"):
        model.apply(params, jnp.zeros((B, 12)), cfg=_cfg())[0]


def test_apply_with_dropout_in_training_without_key_raises():
    cfg = _cfg(dropout=0.1)
    with pytest.raises(ValueError, match="expected a PRNG key for dropout"):
        model.apply(model.init(jax.random.key(0), cfg), _x(cfg), cfg=cfg, train=True)[0]


def _apply_case():
    cfg = model.Config(input_shape=(6,), num_classes=3, cell="lstm", hidden=2, chunk=2)
    params = jax.tree.map(lambda a: a.astype(jnp.float64), model.init(jax.random.key(0), cfg))
    x = jax.random.normal(jax.random.key(1), (2, 6), jnp.float64)  # (B, L)
    return lambda p, x: model.apply(p, x, cfg=cfg)[0], (params, x)


GRAD_CASES = {"jaxnn.models.rnn.apply": _apply_case}
