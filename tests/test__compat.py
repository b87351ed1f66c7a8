"""Sizes are named one way across the layers (in_dim/out_dim, or dim where the size is kept);
every init_* takes a key first or says in its docstring that it is keyless; old keyword names
still work with a DeprecationWarning."""

import inspect

import jax
import numpy as np
import pytest

from jaxnn import layers
from jaxnn._compat import renamed_arguments

SIZE_WORDS = {"in_dim", "out_dim", "dim", "kv_dim", "vocab_size", "max_len", "num_heads"}


def _inits():
    return {n: getattr(layers, n) for n in layers.__all__ if n.startswith("init_")}


@pytest.mark.parametrize("name", sorted(_inits()))
def test_every_layer_init_names_its_sizes_one_way_and_takes_a_key_or_says_it_is_keyless(name):
    fn = _inits()[name]
    params = list(inspect.signature(fn).parameters.values())
    positional = [p.name for p in params if p.kind == p.POSITIONAL_OR_KEYWORD]
    sizes = [p for p in positional if p not in ("key", "kernel_size", "mlp_ratio")]
    assert set(sizes) <= SIZE_WORDS, (name, sizes)
    if positional[0] != "key":
        assert "Keyless" in inspect.getdoc(fn), name


@pytest.mark.parametrize(
    ("fn", "args", "old"),
    [
        (layers.init_conv2d, (3,), {"in_ch": 2, "out_ch": 4}),
        (layers.init_gru, (3,), {"hidden": 5}),
        (layers.init_batch_norm, (), {"num_features": 6}),
        (layers.init_residual_block, (), {"channels": 2}),
    ],
)
def test_old_keyword_names_give_the_same_params_with_a_deprecation_warning(fn, args, old):
    key = () if fn is layers.init_batch_norm else (jax.random.key(0),)
    new = {"in_ch": "in_dim", "out_ch": "out_dim", "hidden": "out_dim", "num_features": "dim",
           "channels": "dim"}  # fmt: skip
    with pytest.warns(DeprecationWarning, match="is now called"):
        got = fn(*key, *args, **old)
    want = fn(*key, *args, **{new[k]: v for k, v in old.items()})
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
        np.testing.assert_array_equal(a, b)


def test_an_old_and_a_new_name_together_are_refused():
    f = renamed_arguments(old="new")(lambda *, new: new)
    with pytest.raises(TypeError, match="got both 'old'"):
        f(old=1, new=2)
