import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxnn.models import transformer as model

B, T, V = 2, 6, 11


def _cfg(**kw):
    base = {"vocab_size": V, "max_len": 8, "dim": 8, "num_heads": 2, "num_layers": 1}
    return model.Config(**{**base, "mlp_ratio": 2, **kw})


def _ids(seed=0, shape=(B, T)):
    return jax.random.randint(jax.random.key(seed), shape, 0, V)


def _setup(**kw):
    cfg = _cfg(**kw)
    return cfg, model.init(jax.random.key(0), cfg)


@pytest.mark.parametrize("positional", ["sinusoidal", "learned", "none"])
def test_language_model_gives_next_token_logits_per_position(transform, positional):
    cfg, params = _setup(positional=positional)
    logits = transform(lambda p, x: model.apply(p, x, cfg=cfg)[0])(params, _ids())
    assert logits.shape == (B, T, V)
    assert np.isfinite(np.asarray(logits)).all()


def test_classifier_gives_one_row_of_class_logits(transform):
    cfg, params = _setup(task="classification", num_classes=3)
    logits = transform(lambda p, x: model.apply(p, x, cfg=cfg)[0])(params, _ids())
    assert logits.shape == (B, 3)


def test_language_model_output_at_t_ignores_later_tokens(transform):
    cfg, params = _setup()
    x = _ids()
    x_changed = x.at[:, 3:].set((x[:, 3:] + 1) % V)
    f = transform(lambda p, x: model.apply(p, x, cfg=cfg)[0])
    out, out_changed = f(params, x), f(params, x_changed)
    np.testing.assert_allclose(out[:, :3], out_changed[:, :3], rtol=1e-5, atol=1e-6)
    assert float(jnp.max(jnp.abs(out[:, 3:] - out_changed[:, 3:]))) > 1e-3


def test_classifier_without_positions_ignores_token_order(transform):
    cfg, params = _setup(task="classification", num_classes=3, positional="none")
    x = _ids()
    f = transform(lambda p, x: model.apply(p, x, cfg=cfg)[0])
    perm = jnp.array([4, 2, 0, 5, 1, 3])
    np.testing.assert_allclose(f(params, x[:, perm]), f(params, x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("positional", ["sinusoidal", "learned"])
def test_classifier_with_positions_sees_token_order(positional):
    cfg, params = _setup(task="classification", num_classes=3, positional=positional)
    x = jnp.array([[1, 2, 3, 4, 5, 6]])
    perm = jnp.array([4, 2, 0, 5, 1, 3])
    diff = model.apply(params, x[:, perm], cfg=cfg)[0] - model.apply(params, x, cfg=cfg)[0]
    assert float(jnp.max(jnp.abs(diff))) > 1e-3


def test_learned_positions_exist_only_when_asked_for():
    assert "pos" in _setup(positional="learned")[1]
    assert "pos" not in _setup(positional="sinusoidal")[1]


def test_vmap_of_single_sequence_calls_equals_batched_call():
    cfg, params = _setup()
    x = _ids()
    one = lambda s: model.apply(params, s[None], cfg=cfg)[0][0]
    np.testing.assert_allclose(
        jax.vmap(one)(x), model.apply(params, x, cfg=cfg)[0], rtol=1e-5, atol=1e-5
    )


def test_param_count_matches_the_block_formula():
    cfg, params = _setup(num_layers=1, positional="none")  # D = 8, r = 2
    d, r = 8, 2
    block = 4 * (d * d + d) + (2 * r * d * d + (r + 1) * d) + 4 * d
    want = V * d + block + 2 * d + (d * V + V)
    assert model.param_count(params) == want


def test_dropout_changes_logits_in_training_only(transform):
    cfg, params = _setup(dropout=0.3)
    x = _ids()
    f = transform(lambda key: model.apply(params, x, cfg=cfg, train=True, key=key)[0])
    assert float(jnp.max(jnp.abs(f(jax.random.key(1)) - f(jax.random.key(2))))) > 1e-3
    np.testing.assert_array_equal(
        model.apply(params, x, cfg=cfg, key=jax.random.key(1))[0],
        model.apply(params, x, cfg=cfg)[0],
    )


def test_sequence_longer_than_max_len_raises():
    cfg, params = _setup(max_len=4)
    with pytest.raises(ValueError, match="at most max_len=4 tokens, got length 6"):
        model.apply(params, _ids(), cfg=cfg)[0]


def test_float_token_ids_raise():
    cfg, params = _setup()
    with pytest.raises(ValueError, match="expected integer token ids, got dtype float32"):
        model.apply(params, jnp.zeros((B, T)), cfg=cfg)[0]


def test_token_ids_of_rank_1_raise():
    cfg, params = _setup()
    with pytest.raises(ValueError, match=r"rank 2 \(B, T\), got rank 1"):
        model.apply(params, jnp.zeros((T,), jnp.int32), cfg=cfg)[0]


def test_token_ids_outside_vocabulary_raise():
    cfg, params = _setup()
    with pytest.raises(ValueError, match=r"token ids in \[0, 11\)"):
        model.apply(params, jnp.full((B, T), V), cfg=cfg)[0]


def test_config_rejects_heads_not_dividing_width():
    with pytest.raises(ValueError, match="num_heads to divide dim 8, got num_heads=3"):
        _cfg(num_heads=3)


def test_params_of_another_config_raise():
    _, params = _setup(positional="learned")
    with pytest.raises(ValueError, match="expected param keys"):
        model.apply(params, _ids(), cfg=_cfg())[0]


def test_dropout_in_training_without_key_raises():
    cfg, params = _setup(dropout=0.1)
    with pytest.raises(ValueError, match="expected a PRNG key for dropout"):
        model.apply(params, _ids(), cfg=cfg, train=True)[0]


@dataclasses.dataclass
class _Info:
    task: str
    input_shape: tuple
    num_classes: int
    tokenizer: object = None


def test_config_for_language_model_uses_vocabulary_and_sequence_length():
    cfg = model.config_for(_Info("language_model", (32,), 97), dim=16)
    assert (cfg.task, cfg.vocab_size, cfg.max_len, cfg.dim) == ("language_model", 97, 32, 16)


def test_config_for_token_classification_reads_the_tokenizer_vocabulary():
    tokenizer = type("Tok", (), {"vocab_size": 50})()
    cfg = model.config_for(_Info("classification", (20,), 4, tokenizer))
    assert (cfg.task, cfg.vocab_size, cfg.num_classes, cfg.max_len) == ("classification", 50, 4, 20)


def test_config_for_classification_without_vocabulary_raises():
    with pytest.raises(ValueError, match="expected a vocabulary size"):
        model.config_for(_Info("classification", (20,), 4))


# --- generation -----------------------------------------------------------------------------------


def _greedy_reference(params, cfg, prompt, length):
    seq = np.asarray(prompt)
    for _ in range(length):
        context = jnp.asarray(seq[:, -cfg.max_len :])  # crop to the last max_len tokens
        nxt = np.asarray(jnp.argmax(model.apply(params, context, cfg=cfg)[0][:, -1], axis=-1))
        seq = np.concatenate([seq, nxt[:, None]], axis=1)
    return seq


@pytest.mark.parametrize("prompt_len", [4, 10])  # the context outgrows max_len=8; or starts longer
def test_greedy_generation_equals_a_loop_of_argmax_over_the_cropped_context(prompt_len):
    cfg, params = _setup()
    prompt = _ids(3, (B, prompt_len))
    got = model.generate(params, prompt, cfg=cfg, key=jax.random.key(0), length=6, temperature=0.0)
    np.testing.assert_array_equal(got, _greedy_reference(params, cfg, prompt, 6))


def test_generate_under_jit_equals_eager_and_keeps_the_prompt():
    cfg, params = _setup()
    prompt = _ids(3, (B, 3))
    gen = jax.jit(model.generate, static_argnames=("cfg", "length", "temperature"))
    got = gen(params, prompt, cfg=cfg, key=jax.random.key(5), length=7)
    np.testing.assert_array_equal(
        got, model.generate(params, prompt, cfg=cfg, key=jax.random.key(5), length=7)
    )
    np.testing.assert_array_equal(got[:, :3], prompt)
    assert got.shape == (B, 10) and int(got.min()) >= 0 and int(got.max()) < V


def test_sampling_depends_on_the_key():
    cfg, params = _setup()
    prompt = _ids(3, (B, 3))
    a = model.generate(params, prompt, cfg=cfg, key=jax.random.key(1), length=12, temperature=2.0)
    b = model.generate(params, prompt, cfg=cfg, key=jax.random.key(2), length=12, temperature=2.0)
    assert not np.array_equal(a, b)


def test_generate_from_one_unbatched_prompt_returns_one_sequence():
    cfg, params = _setup()
    out = model.generate(params, jnp.array([1, 2]), cfg=cfg, key=jax.random.key(0), length=3)
    assert out.shape == (5,)


def test_generate_rejects_a_classifier():
    cfg, params = _setup(task="classification", num_classes=3)
    with pytest.raises(ValueError, match="expected a language model"):
        model.generate(params, _ids(), cfg=cfg, key=jax.random.key(0), length=2)


def test_generate_rejects_float_prompt():
    cfg, params = _setup()
    with pytest.raises(ValueError, match="expected integer prompt ids"):
        model.generate(params, jnp.zeros((1, 2)), cfg=cfg, key=jax.random.key(0), length=2)


def test_language_model_learns_to_continue_a_cycle():
    """Trained on 0 1 2 3 4 0 1 2 ..., greedy generation continues the cycle."""
    cfg = model.Config(vocab_size=5, max_len=8, dim=16, num_heads=2, num_layers=1)
    data = jnp.arange(40) % 5
    x = jnp.stack([data[i : i + 8] for i in range(5)])  # (5, 8)
    y = jnp.stack([data[i + 1 : i + 9] for i in range(5)])  # (5, 8)
    params = model.init(jax.random.key(0), cfg)
    opt = optax.adam(1e-2)
    state = opt.init(params)

    @jax.jit
    def step(params, state):
        loss = lambda p: optax.softmax_cross_entropy_with_integer_labels(
            model.apply(p, x, cfg=cfg)[0], y
        ).mean()
        updates, state = opt.update(jax.grad(loss)(params), state)
        return optax.apply_updates(params, updates), state

    for _ in range(60):
        params, state = step(params, state)
    out = model.generate(
        params, jnp.array([2, 3]), cfg=cfg, key=jax.random.key(0), length=10, temperature=0.0
    )
    np.testing.assert_array_equal(out, (jnp.arange(12) + 2) % 5)


# ---------------------------------------------------------------------------------------------
# Rematerialization (Chapter 5: training stores activations).


def _weighted_sum(cfg, x, key):
    """``params -> sum(logits * w)`` in training mode: every logit reaches the gradient."""

    def loss(params):
        logits = model.apply(params, x, cfg=cfg, train=True, key=key)[0]
        w = jnp.cos(jnp.arange(logits.size, dtype=jnp.float32)).reshape(logits.shape)
        return jnp.sum(logits * w)

    return loss


@pytest.mark.parametrize(
    "task,key",
    [
        ("language_model", jax.random.key(3)),
        ("language_model", jax.random.PRNGKey(3)),  # raw keys, as the train step passes them
        ("classification", jax.random.key(3)),
    ],
)
def test_remat_gives_the_outputs_and_gradients_of_the_plain_blocks(task, key):
    cfg = _cfg(num_layers=3, dropout=0.2, task=task, num_classes=3)
    remat = dataclasses.replace(cfg, remat=True)
    params, x = model.init(jax.random.key(0), cfg), _ids()
    np.testing.assert_array_equal(
        jax.tree.map(np.shape, model.init(jax.random.key(0), remat)), jax.tree.map(np.shape, params)
    )
    run = lambda c: model.apply(params, x, cfg=c, train=True, key=key)[0]
    np.testing.assert_allclose(run(remat), run(cfg), rtol=1e-5, atol=1e-6)  # the same masks
    (loss, grads), (loss_r, grads_r) = (
        jax.jit(jax.value_and_grad(_weighted_sum(c, x, key)))(params) for c in (cfg, remat)
    )
    np.testing.assert_allclose(loss_r, loss, rtol=1e-5, atol=1e-6)
    assert sorted(grads_r) == sorted(grads) == sorted(params)  # block_0, block_1, ... as before
    for path, g in jax.tree_util.tree_leaves_with_path(grads):
        got = functools.reduce(lambda t, k: t[k.key], path, grads_r)
        np.testing.assert_allclose(got, g, rtol=1e-5, atol=1e-6, err_msg=jax.tree_util.keystr(path))


def test_remat_changes_nothing_without_dropout_in_evaluation_and_under_vmap():
    cfg, params = _setup(num_layers=2)
    remat = dataclasses.replace(cfg, remat=True)
    x = _ids()
    single = lambda row: model.apply(params, row[None], cfg=remat)[0][0]
    np.testing.assert_allclose(
        jax.vmap(single)(x), model.apply(params, x, cfg=cfg)[0], rtol=1e-5, atol=1e-6
    )


def test_remat_cuts_the_scratch_memory_of_the_gradient(gradient_scratch_bytes):
    # Measured (jax 0.10.2, CPU): 1.66 MB with remat against 3.90 MB without (0.43x); a
    # jax.checkpoint around each block of the unrolled loop gives 1.0x on XLA:CPU.
    cfg = model.Config(vocab_size=32, max_len=32, dim=32, num_heads=2, num_layers=4)
    params, x = model.init(jax.random.key(0), cfg), jnp.zeros((8, 32), jnp.int32)
    plain = gradient_scratch_bytes(model.apply, cfg, params, x)
    remat = gradient_scratch_bytes(model.apply, dataclasses.replace(cfg, remat=True), params, x)
    assert remat < 0.6 * plain, (remat, plain)


@pytest.mark.parametrize("value", [1, "yes", None])
def test_config_rejects_a_remat_that_is_not_a_bool(value):
    with pytest.raises(ValueError, match=f"expected remat to be True or False, got {value!r}"):
        _cfg(remat=value)


def _apply_case():
    cfg = model.Config(
        vocab_size=5, max_len=4, dim=4, num_heads=2, num_layers=1, mlp_ratio=1, positional="learned"
    )
    params = jax.tree.map(lambda a: a.astype(jnp.float64), model.init(jax.random.key(0), cfg))
    x = jnp.array([[1, 4, 0]])  # (B, T)
    return lambda p: model.apply(p, x, cfg=cfg)[0], (params,)


GRAD_CASES = {"jaxnn.models.transformer.apply": _apply_case}

NOT_DIFFERENTIABLE = {"jaxnn.models.transformer.generate": "samples integer token ids"}


def _bias_leaves(tree) -> list[str]:
    paths = jax.tree_util.tree_leaves_with_path(tree)
    return [jax.tree_util.keystr(p) for p, _ in paths if p[-1].key in ("b", "bias")]


def test_a_bias_free_transformer_has_no_bias_anywhere_and_the_same_matrices():
    cfg, params = _setup(num_layers=2)
    free = model.init(jax.random.key(0), dataclasses.replace(cfg, bias=False))
    assert _bias_leaves(params) and not _bias_leaves(free)
    biases = sum(int(np.size(a)) for p, a in jax.tree_util.tree_leaves_with_path(params)
                 if p[-1].key in ("b", "bias"))  # fmt: skip
    assert model.param_count(free) == model.param_count(params) - biases
    np.testing.assert_array_equal(
        free["block_1"]["attn"]["q"]["w"], params["block_1"]["attn"]["q"]["w"]
    )
    # zero biases add nothing: the bias-free model computes what the default one does at init
    x = _ids()
    np.testing.assert_allclose(
        model.apply(free, x, cfg=dataclasses.replace(cfg, bias=False))[0],
        model.apply(params, x, cfg=cfg)[0], rtol=1e-6, atol=1e-6,
    )  # fmt: skip


def test_tied_embeddings_read_the_head_from_the_embedding_table():
    cfg = _cfg(tie_embeddings=True, bias=False, positional="learned")
    params, x = model.init(jax.random.key(0), cfg), _ids()
    assert "head" not in params  # no matrix and, without bias, no b either
    with_bias = model.init(jax.random.key(0), dataclasses.replace(cfg, bias=True))
    assert sorted(with_bias["head"]) == ["b"]
    logits = model.apply(params, x, cfg=cfg)[0]
    assert logits.shape == (B, T, V)
    # unit-scale first logits: the table starts at N(0, 1/D)
    assert 0.2 < float(jnp.std(logits)) < 3.0
    moved = jax.tree.map(lambda a: a, params)
    step = jnp.linspace(-1.0, 1.0, cfg.dim)  # not constant: layer-normed h sums to zero
    moved["embed"] = {"table": params["embed"]["table"].at[3].add(step)}
    x0 = jnp.zeros_like(x)  # token 0 only: row 3 reaches the logits through the head alone
    changed = model.apply(moved, x0, cfg=cfg)[0] - model.apply(params, x0, cfg=cfg)[0]
    assert float(jnp.abs(changed[..., 3]).min()) > 0 and float(jnp.abs(changed[..., 5]).max()) == 0


def test_tied_embeddings_are_refused_for_a_classifier():
    with pytest.raises(ValueError, match="expected tie_embeddings=False for task='classification'"):
        _cfg(task="classification", num_classes=3, tie_embeddings=True)


def test_a_bias_free_tied_transformer_passes_the_gradient_check_with_remat_and_without(x64):
    from jaxnn.gradcheck import check_grads

    cfg = model.Config(vocab_size=5, max_len=4, dim=4, num_heads=2, num_layers=2, mlp_ratio=1,
                       positional="learned", bias=False, tie_embeddings=True)  # fmt: skip
    params = jax.tree.map(lambda a: a.astype(jnp.float64), model.init(jax.random.key(1), cfg))
    x = jnp.array([[0, 3, 1, 4], [2, 2, 0, 1]], jnp.int32)
    for c in (cfg, dataclasses.replace(cfg, remat=True)):
        check_grads(lambda p, c=c: model.apply(p, x, cfg=c)[0], (params,), order=1, modes=("rev",))
