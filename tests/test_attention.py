import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnn.layers import attention as att
from jaxnn.layers.embedding import sinusoidal_positions

B, T, H, DH = 2, 5, 2, 3
D = H * DH


def _normal(seed, shape, dtype=jnp.float32):
    return jax.random.normal(jax.random.key(seed), shape, dtype)


def _qkv(t_k=T):
    return _normal(0, (B, T, H, DH)), _normal(1, (B, t_k, H, DH)), _normal(2, (B, t_k, H, DH))


def _random_mask(t_q=T, t_k=T):
    mask = jax.random.bernoulli(jax.random.key(3), 0.6, (B, 1, t_q, t_k))  # (B, 1, Tq, Tk)
    return mask.at[..., 0].set(True)  # every query may attend somewhere


# --- scaled dot-product attention ---------------------------------------------------------------


def test_causal_mask_allows_exactly_the_past_and_present():
    mask = np.asarray(att.causal_mask(4))
    i, j = np.indices((4, 4))
    np.testing.assert_array_equal(mask, j <= i)


@pytest.mark.parametrize("is_causal", [False, True])
def test_attention_equals_jax_dot_product_attention(transform, is_causal):
    q, k, v = _qkv()
    want = jax.nn.dot_product_attention(q, k, v, is_causal=is_causal)
    got = transform(lambda q, k, v: att.scaled_dot_product_attention(q, k, v, is_causal=is_causal))(
        q, k, v
    )
    assert got.shape == (B, T, H, DH)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_masked_attention_equals_jax_dot_product_attention(transform):
    q, k, v = _qkv(t_k=7)
    mask = _random_mask(T, 7)
    want = jax.nn.dot_product_attention(q, k, v, mask=mask)
    got = transform(lambda q, k, v, m: att.scaled_dot_product_attention(q, k, v, mask=m))(
        q, k, v, mask
    )
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_mask_and_causal_combine_like_jax(transform):
    q, k, v = _qkv()
    mask = _random_mask()
    want = jax.nn.dot_product_attention(q, k, v, mask=mask, is_causal=True)
    got = transform(
        lambda q, k, v: att.scaled_dot_product_attention(q, k, v, mask=mask, is_causal=True)
    )(q, k, v)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_query_with_nothing_to_attend_gets_the_mean_of_values():
    q, k, v = _qkv()
    mask = jnp.ones((1, 1, T, T), bool).at[:, :, 2].set(False)  # query 2 may attend nothing
    out = att.scaled_dot_product_attention(q, k, v, mask=mask)
    np.testing.assert_allclose(out[:, 2], v.mean(axis=1), rtol=1e-5, atol=1e-6)
    assert np.isfinite(np.asarray(out)).all()


def test_vmap_of_unbatched_attention_equals_batched_call():
    q, k, v = _qkv()
    mask = _random_mask()
    want = att.scaled_dot_product_attention(q, k, v, mask=mask, is_causal=True)
    got = jax.vmap(
        lambda q, k, v, m: att.scaled_dot_product_attention(q, k, v, mask=m, is_causal=True)
    )(q, k, v, mask)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_attention_rejects_rank_2_queries():
    q, k, v = _qkv()
    with pytest.raises(ValueError, match=r"rank 4 \(B, T, H, Dh\) .* got rank 2"):
        att.scaled_dot_product_attention(q[0, :, 0], k, v)


def test_attention_rejects_queries_and_keys_of_different_head_width():
    q, k, v = _qkv()
    with pytest.raises(ValueError, match="expected q and k to agree"):
        att.scaled_dot_product_attention(q[..., :2], k, v)


def test_attention_rejects_mask_that_does_not_broadcast():
    q, k, v = _qkv()
    with pytest.raises(
        ValueError, match=r"mask broadcastable to \(2, 2, 5, 5\), got shape \(4, 4\)"
    ):
        att.scaled_dot_product_attention(q, k, v, mask=jnp.ones((4, 4), bool))


# --- multi-head attention -------------------------------------------------------------------------


def _to_flax(params):
    """Our dense (D, D) projections as Flax DenseGeneral (D, H, Dh) / (H, Dh, D) kernels."""

    def proj(p):
        return {"kernel": p["w"].reshape(-1, H, DH), "bias": p["b"].reshape(H, DH)}

    out = {"kernel": params["out"]["w"].reshape(H, DH, D), "bias": params["out"]["b"]}
    return {
        "params": {
            "query": proj(params["q"]),
            "key": proj(params["k"]),
            "value": proj(params["v"]),
            "out": out,
        }
    }


def _mha_params(kv_dim=None, seed=4):
    params = att.init_multi_head_attention(jax.random.key(seed), D, H, kv_dim=kv_dim)
    # Non-zero biases, so that a bias in the wrong place cannot go unnoticed.
    return jax.tree.map(lambda a: a + 0.1 * _normal(9, a.shape) if a.ndim == 1 else a, params)


@pytest.mark.parametrize("causal", [False, True])
def test_multi_head_attention_equals_flax(transform, causal):
    params = _mha_params()
    x = _normal(5, (B, T, D))
    flax_mha = nn.MultiHeadDotProductAttention(num_heads=H, qkv_features=D, out_features=D)
    mask = nn.make_causal_mask(jnp.ones((B, T))) if causal else None  # (B, 1, T, T)
    want = flax_mha.apply(_to_flax(params), x, mask=mask)
    got = transform(lambda p, x: att.multi_head_attention(p, x, num_heads=H, is_causal=causal))(
        params, x
    )
    assert got.shape == (B, T, D)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_cross_attention_equals_flax(transform):
    params = _mha_params(kv_dim=4)
    x, kv = _normal(5, (B, T, D)), _normal(6, (B, 7, 4))
    flax_mha = nn.MultiHeadDotProductAttention(num_heads=H, qkv_features=D, out_features=D)
    want = flax_mha.apply(_to_flax(params), x, kv)
    got = transform(lambda p, x, kv: att.multi_head_attention(p, x, num_heads=H, kv=kv))(
        params, x, kv
    )
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_vmap_of_unbatched_multi_head_attention_equals_batched_call():
    params = _mha_params()
    x = _normal(5, (B, T, D))
    f = lambda s: att.multi_head_attention(params, s, num_heads=H, is_causal=True)
    np.testing.assert_allclose(jax.vmap(f)(x), f(x), rtol=1e-5, atol=1e-6)


def test_multi_head_attention_is_permutation_equivariant():
    params = _mha_params()
    x = _normal(5, (B, T, D))
    perm = jnp.array([3, 0, 4, 1, 2])
    out = att.multi_head_attention(params, x, num_heads=H)
    out_perm = att.multi_head_attention(params, x[:, perm], num_heads=H)
    np.testing.assert_allclose(out_perm, out[:, perm], rtol=1e-5, atol=1e-6)


def test_init_multi_head_attention_rejects_heads_not_dividing_width():
    with pytest.raises(ValueError, match=r"num_heads to divide the width 6, got num_heads=4"):
        att.init_multi_head_attention(jax.random.key(0), 6, 4)


def test_multi_head_attention_rejects_heads_not_dividing_width():
    with pytest.raises(ValueError, match=r"num_heads to divide the width 6, got num_heads=4"):
        att.multi_head_attention(_mha_params(), _normal(5, (B, T, D)), num_heads=4)


def test_multi_head_attention_rejects_input_of_wrong_width():
    with pytest.raises(
        ValueError, match=r"expected x with feature size 6 .* got shape \(2, 5, 5\)"
    ):
        att.multi_head_attention(_mha_params(), _normal(5, (B, T, D - 1)), num_heads=H)


def test_cross_attention_rejects_kv_of_wrong_width():
    params = _mha_params(kv_dim=4)
    with pytest.raises(
        ValueError, match=r"expected kv with feature size 4 .* got shape \(2, 7, 6\)"
    ):
        att.multi_head_attention(
            params, _normal(5, (B, T, D)), num_heads=H, kv=_normal(6, (B, 7, D))
        )


def test_attention_rejects_a_float_mask():
    q, k, v = _qkv()
    with pytest.raises(ValueError, match="expected a boolean mask .* got dtype float32"):
        att.scaled_dot_product_attention(q, k, v, mask=jnp.zeros((T, T)))


def test_multi_head_attention_rejects_rank_4_input():
    with pytest.raises(ValueError, match=r"expected rank 2 or 3, got rank 4"):
        att.multi_head_attention(_mha_params(), _normal(5, (B, T, 1, D)), num_heads=H)


# --- Transformer block ----------------------------------------------------------------------------


def _block_params(seed=7):
    return att.init_transformer_block(jax.random.key(seed), D, H, mlp_ratio=2)


def test_transformer_block_with_zero_output_projections_is_the_identity(transform):
    params = _block_params()
    params["attn"]["out"] = jax.tree.map(jnp.zeros_like, params["attn"]["out"])
    params["mlp"]["proj"] = jax.tree.map(jnp.zeros_like, params["mlp"]["proj"])
    x = _normal(5, (B, T, D))
    got = transform(lambda p, x: att.transformer_block(p, x, num_heads=H))(params, x)
    np.testing.assert_array_equal(got, x)


def test_transformer_block_is_pre_norm_attention_then_mlp():
    params = _block_params()
    x = _normal(5, (B, T, D))

    def layer_norm(p, a):
        mean, var = a.mean(-1, keepdims=True), a.var(-1, keepdims=True)
        return (a - mean) / np.sqrt(var + 1e-5) * p["scale"] + p["bias"]

    mha = lambda a: att.multi_head_attention(params["attn"], a, num_heads=H)
    mlp = params["mlp"]
    h = x + mha(layer_norm(params["ln1"], x))
    fc = layer_norm(params["ln2"], h) @ mlp["fc"]["w"] + mlp["fc"]["b"]
    want = h + jax.nn.gelu(fc, approximate=False) @ mlp["proj"]["w"] + mlp["proj"]["b"]
    got = att.transformer_block(params, x, num_heads=H)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_transformer_block_without_positions_is_permutation_equivariant(transform):
    params = _block_params()
    x = _normal(5, (B, T, D))
    perm = jnp.array([3, 0, 4, 1, 2])
    f = transform(lambda p, x: att.transformer_block(p, x, num_heads=H))
    np.testing.assert_allclose(f(params, x[:, perm]), f(params, x)[:, perm], rtol=1e-5, atol=1e-5)


def test_transformer_block_with_positions_is_not_permutation_equivariant():
    params = _block_params()
    x = _normal(5, (B, T, D))
    pos = sinusoidal_positions(T, D)  # (T, D)
    perm = jnp.array([3, 0, 4, 1, 2])
    f = lambda a: att.transformer_block(params, a + pos, num_heads=H)
    assert float(jnp.max(jnp.abs(f(x[:, perm]) - f(x)[:, perm]))) > 1e-2


def test_causal_block_output_at_t_ignores_later_tokens(transform):
    params = _block_params()
    x = _normal(5, (B, T, D))
    x_changed = x.at[:, 3:].set(_normal(8, (B, T - 3, D)))
    f = transform(lambda p, x: att.transformer_block(p, x, num_heads=H, is_causal=True))
    out, out_changed = f(params, x), f(params, x_changed)
    np.testing.assert_allclose(out[:, :3], out_changed[:, :3], rtol=1e-6, atol=1e-6)
    assert float(jnp.max(jnp.abs(out[:, 3:] - out_changed[:, 3:]))) > 1e-2


def test_vmap_of_unbatched_block_equals_batched_call():
    params = _block_params()
    x = _normal(5, (B, T, D))
    f = lambda s: att.transformer_block(params, s, num_heads=H, is_causal=True)
    np.testing.assert_allclose(jax.vmap(f)(x), f(x), rtol=1e-5, atol=1e-5)


def test_block_dropout_depends_on_the_key_in_training_only(transform):
    params = _block_params()
    x = _normal(5, (B, T, D))

    def run(train):
        return transform(
            lambda key: att.transformer_block(
                params, x, num_heads=H, dropout=0.5, key=key, train=train
            )
        )

    k1, k2 = jax.random.key(1), jax.random.key(2)
    evaluate, train = run(False), run(True)
    np.testing.assert_array_equal(evaluate(k1), evaluate(k2))
    np.testing.assert_allclose(
        evaluate(k1), att.transformer_block(params, x, num_heads=H), rtol=1e-6, atol=1e-6
    )
    np.testing.assert_array_equal(train(k1), train(k1))
    assert float(jnp.max(jnp.abs(train(k1) - train(k2)))) > 1e-2


def test_block_dropout_in_training_without_key_raises():
    with pytest.raises(ValueError, match="expected a PRNG key when train=True"):
        att.transformer_block(
            _block_params(), _normal(5, (B, T, D)), num_heads=H, dropout=0.1, train=True
        )


def test_init_transformer_block_rejects_heads_not_dividing_width():
    with pytest.raises(ValueError, match="num_heads to divide the width 6"):
        att.init_transformer_block(jax.random.key(0), 6, 5)


# --- gradient-check registry ---------------------------------------------------------------------


def _sdpa_case():
    q, k, v = (_normal(i, (1, 3, 2, 2), jnp.float64) for i in range(3))  # (B, T, H, Dh)
    mask = jnp.array([[True, True, False], [True, True, True], [False, True, True]])  # (T, T)
    return lambda q, k, v: att.scaled_dot_product_attention(q, k, v, mask=mask, is_causal=True), (
        q,
        k,
        v,
    )


def _mha_case():
    params = att.init_multi_head_attention(jax.random.key(0), 4, 2, dtype=jnp.float64)
    x = _normal(1, (1, 3, 4), jnp.float64)  # (B, T, D)
    return lambda p, x: att.multi_head_attention(p, x, num_heads=2, is_causal=True), (params, x)


def _block_case():
    params = att.init_transformer_block(jax.random.key(0), 4, 2, mlp_ratio=1, dtype=jnp.float64)
    x = _normal(1, (1, 3, 4), jnp.float64)  # (B, T, D)
    return lambda p, x: att.transformer_block(p, x, num_heads=2, is_causal=True), (params, x)


GRAD_CASES = {
    "jaxnn.layers.attention.scaled_dot_product_attention": _sdpa_case,
    "jaxnn.layers.attention.multi_head_attention": _mha_case,
    "jaxnn.layers.attention.transformer_block": _block_case,
}

NOT_DIFFERENTIABLE = {
    "jaxnn.layers.attention.causal_mask": "a boolean mask built from an integer length",
}
