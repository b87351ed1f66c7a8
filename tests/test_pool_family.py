"""The pooling family: the four named pools are jaxnn.layers.conv.pool with two arguments fixed."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnn.layers import conv as C

MEMBERS = {
    "max_pool1d": ("max", 1),
    "avg_pool1d": ("avg", 1),
    "max_pool2d": ("max", 2),
    "avg_pool2d": ("avg", 2),
}


@pytest.mark.parametrize("name", sorted(MEMBERS))
def test_named_pool_is_pool_with_kind_and_spatial_dims_fixed(name):
    kind, spatial_dims = MEMBERS[name]
    member = getattr(C, name)
    x = jax.random.normal(jax.random.key(0), (2, *(6,) * spatial_dims, 3))
    assert member.func is C.pool
    assert member.keywords == {"kind": kind, "spatial_dims": spatial_dims}
    assert member.__name__ == name and member.__module__ == "jaxnn.layers.conv"
    got = member(x, 3, 2, "SAME")
    want = C.pool(x, 3, 2, "SAME", kind=kind, spatial_dims=spatial_dims)
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("name", sorted(MEMBERS))
def test_error_from_named_pool_names_it(name):
    x = jnp.zeros((1, 4, 4, 4, 1))  # one rank too many for either member
    with pytest.raises(ValueError, match=rf"^{name}: expected input of rank"):
        getattr(C, name)(x, 2)


@pytest.mark.parametrize(("kind", "spatial_dims"), [("min", 2), ("max", 3)])
def test_pool_with_unknown_kind_or_spatial_dims_raises(kind, spatial_dims):
    with pytest.raises(ValueError, match=r"^pool: expected kind in \('max', 'avg'\)"):
        C.pool(jnp.zeros((1, 4, 4, 1)), 2, kind=kind, spatial_dims=spatial_dims)
