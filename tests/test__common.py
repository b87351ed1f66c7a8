"""The helpers shared by the model modules."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnn.models import _common


def test_widths_takes_an_int_or_a_sequence_and_refuses_strings_and_zero():
    assert _common.widths("m", 8) == (8,)
    assert _common.widths("m", [8, 4]) == (8, 4)
    assert _common.widths("m", ()) == ()
    with pytest.raises(ValueError, match="m: expected hidden as a tuple"):
        _common.widths("m", "8")
    with pytest.raises(ValueError, match="every hidden width"):
        _common.widths("m", (8, 0))


def test_check_state_takes_none_for_empty_and_refuses_other_shapes():
    assert _common.check_state("m", None, {}) == {}
    want = {"bn": {"mean": np.zeros(3)}}
    assert _common.check_state("m", want, want) is want
    with pytest.raises(ValueError, match=r"m: expected state= of shapes"):
        _common.check_state("m", None, want)
    with pytest.raises(ValueError, match=r"m: expected state= of shapes"):
        _common.check_state("m", {"bn": {"mean": np.zeros(4)}}, want)


def test_check_cfg_names_the_expected_config():
    class Config:
        pass

    Config.__module__ = "jaxnn.models.mlp"
    with pytest.raises(ValueError, match=r"m: expected cfg=mlp.Config\(...\).*got NoneType"):
        _common.check_cfg("m", None, Config)


def test_dropout_active_needs_a_key_only_in_training_with_a_rate():
    assert not _common.dropout_active("m", 0.5, False, None)
    assert not _common.dropout_active("m", 0.0, True, None)
    with pytest.raises(ValueError, match="expected a PRNG key"):
        _common.dropout_active("m", 0.5, True, None)


@pytest.mark.parametrize("n,segment", [(5, 2), (4, 4), (1, 3), (3, 1)])
def test_remat_scan_equals_the_plain_loop_in_value_and_gradient(n, segment):
    layer = lambda p, h, i: jnp.tanh(h @ p["w"] + p["b"]) * (1.0 + i)
    ws = jax.random.normal(jax.random.key(0), (n, 4, 4)) / 2
    params = [{"w": ws[i], "b": jnp.full((4,), 0.1 * i)} for i in range(n)]
    h = jax.random.normal(jax.random.key(1), (3, 4))
    ids = jnp.arange(n, dtype=jnp.float32)

    def loop(params, h):
        for i, p in enumerate(params):
            h = layer(p, h, ids[i])
        return jnp.sum(h**3)

    def remat(params, h):
        return jnp.sum(_common.remat_scan(layer, params, h, ids, segment=segment) ** 3)

    want, got = (jax.value_and_grad(f, argnums=(0, 1))(params, h) for f in (loop, remat))
    np.testing.assert_allclose(got[0], want[0], rtol=1e-5)
    for a, b in zip(jax.tree.leaves(got[1]), jax.tree.leaves(want[1]), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
