"""Tests for jaxnn.layers.conv: convolutions and pools against NumPy loops, lax and Flax."""

import flax.linen as fnn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from jaxnn.layers import conv as C

RNG = np.random.default_rng(0)


def _randn(*shape):
    return jnp.asarray(RNG.standard_normal(shape), jnp.float32)


def _distinct(*shape):
    """Values 0.1 apart in random order: no ties, so max pooling is differentiable."""
    values = RNG.permutation(int(np.prod(shape))).reshape(shape) * 0.1
    return values + 0.01 * RNG.standard_normal(shape)


def _same_pads(n, k, s, d):
    """'SAME' padding written out: output ceil(n / s), the extra row/column goes at the end."""
    eff = (k - 1) * d + 1
    out = -(-n // s)
    total = max((out - 1) * s + eff - n, 0)
    return total // 2, total - total // 2


def _np_conv2d(x, w, b, stride, pads, dilation):
    """Direct loop: y[n,i,j,o] = b[o] + sum_{u,v,c} xpad[n, i*s+u*d, j*s+v*d, c] w[u,v,c,o]."""
    (sh, sw), (dh, dw) = stride, dilation
    x = np.pad(np.asarray(x, np.float64), ((0, 0), *pads, (0, 0)))
    w = np.asarray(w, np.float64)
    n, hp, wp, _ = x.shape
    kh, kw, _, o = w.shape
    oh = (hp - (kh - 1) * dh - 1) // sh + 1
    ow = (wp - (kw - 1) * dw - 1) // sw + 1
    y = np.zeros((n, oh, ow, o))
    for i in range(oh):
        for j in range(ow):
            for u in range(kh):
                for v in range(kw):
                    y[:, i, j, :] += x[:, i * sh + u * dh, j * sw + v * dw, :] @ w[u, v]
    return y + np.asarray(b)


def _np_pool2d(x, window, stride, pads, kind):
    """Loop pooling; padded cells are skipped (max ignores them, mean does not count them)."""
    x = np.asarray(x, np.float64)
    n, h, w, c = x.shape
    (kh, kw), (sh, sw) = window, stride
    oh = (h + sum(pads[0]) - kh) // sh + 1
    ow = (w + sum(pads[1]) - kw) // sw + 1
    y = np.zeros((n, oh, ow, c))
    for i in range(oh):
        for j in range(ow):
            r0, c0 = i * sh - pads[0][0], j * sw - pads[1][0]
            patch = x[:, max(r0, 0) : r0 + kh, max(c0, 0) : c0 + kw, :]
            y[:, i, j] = patch.max(axis=(1, 2)) if kind == "max" else patch.mean(axis=(1, 2))
    return y


# (stride, padding, dilation); padding as given to conv2d.
CONV_VARIANTS = [
    (1, "SAME", 1),
    (2, "VALID", 1),
    (2, "SAME", 1),
    (1, "VALID", 2),
    (1, 1, 1),
    ((2, 1), ((1, 0), (2, 1)), (1, 2)),
    (3, "SAME", 2),
]


def _resolve_pads(padding, shape, kernel, stride, dilation):
    stride = (stride,) * 2 if isinstance(stride, int) else stride
    dilation = (dilation,) * 2 if isinstance(dilation, int) else dilation
    if padding == "SAME":
        return [
            _same_pads(n, k, s, d)
            for n, k, s, d in zip(shape, kernel, stride, dilation, strict=True)
        ]
    if padding == "VALID":
        return [(0, 0), (0, 0)]
    if isinstance(padding, int):
        return [(padding, padding)] * 2
    return list(padding)


@pytest.mark.parametrize("stride,padding,dilation", CONV_VARIANTS)
def test_conv2d_equals_numpy_loop(transform, stride, padding, dilation):
    params = C.init_conv2d(jax.random.key(1), (3, 2), 3, 4)
    params["b"] = _randn(4)
    x = _randn(2, 7, 8, 3)
    y = transform(lambda p, x: C.conv2d(p, x, stride=stride, padding=padding, dilation=dilation))(
        params, x
    )
    s = (stride,) * 2 if isinstance(stride, int) else stride
    d = (dilation,) * 2 if isinstance(dilation, int) else dilation
    pads = _resolve_pads(padding, (7, 8), (3, 2), s, d)
    np.testing.assert_allclose(
        y, _np_conv2d(x, params["w"], params["b"], s, pads, d), rtol=1e-5, atol=1e-5
    )


@pytest.mark.parametrize("stride,padding,dilation", CONV_VARIANTS[:5])
def test_conv2d_equals_lax_conv_in_nchw_oihw_layout(stride, padding, dilation):
    params = {"w": _randn(3, 3, 2, 5), "b": _randn(5)}
    x = _randn(3, 9, 6, 2)
    y = C.conv2d(params, x, stride=stride, padding=padding, dilation=dilation)
    pad = [(padding, padding)] * 2 if isinstance(padding, int) else padding
    ref = lax.conv_general_dilated(
        jnp.transpose(x, (0, 3, 1, 2)),  # (N, C, H, W)
        jnp.transpose(params["w"], (3, 2, 0, 1)),  # (O, I, KH, KW)
        window_strides=(stride, stride),
        padding=pad,
        rhs_dilation=(dilation, dilation),
    )
    ref = jnp.transpose(ref, (0, 2, 3, 1)) + params["b"]
    np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("stride,padding,dilation", [(1, "SAME", 1), (2, "VALID", 1), (1, 2, 2)])
def test_conv2d_equals_flax_conv_with_same_weights(stride, padding, dilation):
    params = {"w": _randn(3, 3, 2, 4), "b": _randn(4)}
    x = _randn(2, 8, 7, 2)
    layer = fnn.Conv(
        features=4,
        kernel_size=(3, 3),
        strides=stride,
        padding=padding,
        kernel_dilation=dilation,
    )
    ref = layer.apply({"params": {"kernel": params["w"], "bias": params["b"]}}, x)
    y = C.conv2d(params, x, stride=stride, padding=padding, dilation=dilation)
    np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("stride,padding,dilation", [(1, "SAME", 1), (2, "VALID", 1), (3, 2, 2)])
def test_conv1d_equals_numpy_loop_and_flax(transform, stride, padding, dilation):
    params = {"w": _randn(4, 3, 5), "b": _randn(5)}
    x = _randn(2, 13, 3)
    y = transform(lambda p, x: C.conv1d(p, x, stride=stride, padding=padding, dilation=dilation))(
        params, x
    )
    if padding == "SAME":
        pads = [(0, 0), _same_pads(13, 4, stride, dilation)]
    else:
        p = 0 if padding == "VALID" else padding
        pads = [(0, 0), (p, p)]
    ref = _np_conv2d(x[:, None], params["w"][None], params["b"], (1, stride), pads, (1, dilation))
    np.testing.assert_allclose(y, ref[:, 0], rtol=1e-5, atol=1e-5)
    layer = fnn.Conv(5, kernel_size=(4,), strides=stride, padding=padding, kernel_dilation=dilation)
    flax_y = layer.apply({"params": {"kernel": params["w"], "bias": params["b"]}}, x)
    np.testing.assert_allclose(y, flax_y, rtol=1e-5, atol=1e-5)


def test_conv2d_vmap_of_single_images_equals_batched_call(transform):
    params = C.init_conv2d(jax.random.key(2), 3, 2, 3)
    x = _randn(4, 6, 6, 2)
    single = jax.vmap(lambda xi: C.conv2d(params, xi[None], stride=2)[0])
    np.testing.assert_allclose(
        transform(single)(x), C.conv2d(params, x, stride=2), rtol=1e-6, atol=1e-6
    )


def test_conv1d_vmap_over_a_stack_of_filter_banks_equals_separate_calls():
    stack = jax.vmap(lambda k: C.init_conv1d(k, 3, 2, 4))(jax.random.split(jax.random.key(3), 3))
    x = _randn(2, 9, 2)
    y = jax.vmap(lambda p: C.conv1d(p, x))(stack)  # (3, N, L, O)
    for i in range(3):
        one = jax.tree_util.tree_map(lambda a, i=i: a[i], stack)
        np.testing.assert_allclose(y[i], C.conv1d(one, x), rtol=1e-6, atol=1e-6)


def test_conv2d_is_translation_equivariant_on_a_circular_grid(transform):
    params = C.init_conv2d(jax.random.key(4), 3, 2, 3)
    x = _randn(1, 10, 10, 2)

    def circular_conv(x):  # wrap-around padding: no borders, so equivariance is exact
        return C.conv2d(
            params, jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="wrap"), padding=0
        )

    f = transform(circular_conv)
    shifted_then_conv = f(jnp.roll(x, (3, -2), axis=(1, 2)))
    conv_then_shifted = jnp.roll(f(x), (3, -2), axis=(1, 2))
    np.testing.assert_allclose(shifted_then_conv, conv_then_shifted, rtol=1e-5, atol=1e-5)
    assert not np.allclose(shifted_then_conv, f(x), atol=1e-3)  # the shift did move the output


def test_conv2d_interior_outputs_shift_with_the_input_away_from_borders():
    params = C.init_conv2d(jax.random.key(5), 3, 1, 2)
    x = _randn(1, 12, 12, 1)
    y, y_shift = C.conv2d(params, x), C.conv2d(params, jnp.roll(x, 2, axis=1))
    np.testing.assert_allclose(y_shift[:, 3:-1], y[:, 1:-3], rtol=1e-5, atol=1e-5)


def test_conv2d_param_count_does_not_depend_on_image_size_unlike_dense():
    params = C.init_conv2d(jax.random.key(6), 3, 3, 8)
    count = sum(a.size for a in jax.tree_util.tree_leaves(params))
    assert count == 3 * 3 * 3 * 8 + 8
    for side in (8, 32):
        y = C.conv2d(params, _randn(1, side, side, 3))
        assert y.shape == (1, side, side, 8)
        dense_count = (side * side * 3) * (side * side * 8)  # a dense map with the same output
        assert dense_count > count
    assert (32 * 32 * 3) * (32 * 32 * 8) > 100 * (8 * 8 * 3) * (8 * 8 * 8)


def test_init_conv2d_uses_he_variance_over_the_receptive_field():
    w = C.init_conv2d(jax.random.key(7), 5, 16, 64)["w"]
    assert w.shape == (5, 5, 16, 64)
    np.testing.assert_allclose(np.var(np.asarray(w)), 2.0 / (5 * 5 * 16), rtol=0.05)


# ---------------------------------------------------------------------------------------------
# Pools.

POOLS_2D = {"max": C.max_pool2d, "avg": C.avg_pool2d}
POOLS_1D = {"max": C.max_pool1d, "avg": C.avg_pool1d}


@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize(
    "shape,window", [((2, 8, 6, 3), 2), ((2, 7, 9, 3), (2, 3)), ((1, 9, 9, 1), 3)]
)
def test_pool2d_reshape_path_equals_reduce_window_path(transform, kind, shape, window):
    x = _randn(*shape)
    pool = POOLS_2D[kind]
    fast = transform(lambda x: pool(x, window, method="reshape"))(x)
    slow = transform(lambda x: pool(x, window, method="reduce_window"))(x)
    assert fast.shape == slow.shape
    np.testing.assert_allclose(fast, slow, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(pool(x, window), fast, rtol=0, atol=0)  # auto picks reshape


@pytest.mark.parametrize("kind", ["max", "avg"])
def test_pool1d_reshape_path_equals_reduce_window_path(transform, kind):
    x = _randn(3, 11, 4)
    pool = POOLS_1D[kind]
    fast = transform(lambda x: pool(x, 2, method="reshape"))(x)
    slow = transform(lambda x: pool(x, 2, method="reduce_window"))(x)
    assert fast.shape == (3, 5, 4)
    np.testing.assert_allclose(fast, slow, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize(
    "window,stride,padding", [(2, None, "VALID"), (3, 2, "VALID"), (3, 2, "SAME"), (3, 1, 1)]
)
def test_pool2d_equals_numpy_loop(transform, kind, window, stride, padding):
    x = _randn(2, 7, 8, 2)
    y = transform(lambda x: POOLS_2D[kind](x, window, stride, padding))(x)
    s = window if stride is None else stride
    pads = _resolve_pads(padding, (7, 8), (window, window), (s, s), (1, 1))
    ref = _np_pool2d(x, (window, window), (s, s), pads, kind)
    np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "window,stride,padding", [(2, 2, "VALID"), (3, 2, "SAME"), (3, 1, "VALID")]
)
def test_pools_equal_flax_pooling(window, stride, padding):
    x = _randn(2, 9, 8, 3)
    kw = dict(window_shape=(window, window), strides=(stride, stride), padding=padding)
    np.testing.assert_allclose(
        C.max_pool2d(x, window, stride, padding), fnn.max_pool(x, **kw), rtol=1e-6
    )
    flax_avg = fnn.avg_pool(x, **kw, count_include_pad=False)
    np.testing.assert_allclose(
        C.avg_pool2d(x, window, stride, padding), flax_avg, rtol=1e-5, atol=1e-6
    )
    np.testing.assert_allclose(
        C.max_pool1d(x[:, 0], window, stride, padding),
        fnn.max_pool(x[:, 0], (window,), (stride,), padding),
        rtol=1e-6,
    )


def test_max_pool_ignores_one_pixel_shift_inside_window(transform):
    pool = transform(lambda x: C.max_pool2d(x, 2))
    x = jnp.zeros((1, 8, 8, 1)).at[0, 2, 4, 0].set(1.0)  # window rows 2:4, cols 4:6
    inside = jnp.roll(x, (1, 1), axis=(1, 2))  # now at (3, 5): same window
    across = jnp.roll(x, (2, 0), axis=(1, 2))  # now at (4, 4): the next window down
    np.testing.assert_array_equal(pool(inside), pool(x))
    assert not np.array_equal(pool(across), pool(x))


@pytest.mark.parametrize("method", ["reshape", "reduce_window"])
def test_max_pool_gradient_reaches_only_the_largest_entry_of_each_window(method):
    x = jnp.asarray(_distinct(1, 4, 4, 1), jnp.float32)
    g = jax.grad(lambda x: C.max_pool2d(x, 2, method=method).sum())(x)
    tiles = np.asarray(x).reshape(2, 2, 2, 2).transpose(0, 2, 1, 3).reshape(4, 4)
    winners = tiles == tiles.max(axis=1, keepdims=True)  # one winner per 2x2 window
    grads = np.asarray(g).reshape(2, 2, 2, 2).transpose(0, 2, 1, 3).reshape(4, 4)
    np.testing.assert_array_equal(grads, winners.astype(np.float32))
    assert C.max_pool2d(x, 2, method=method).dtype == x.dtype


def test_max_pool_reshape_path_splits_the_gradient_evenly_among_tied_maxima():
    x = jnp.zeros((1, 2, 4, 1)).at[0, :, 2:, 0].set(1.0)  # window 1 all ties at 0, window 2 at 1
    g = jax.grad(lambda x: C.max_pool2d(x, 2, method="reshape").sum())(x)
    np.testing.assert_allclose(g, np.full((1, 2, 4, 1), 0.25))
    h = jax.jit(jax.grad(lambda x: 0.0 * C.max_pool2d(x, 2, method="reshape").sum()))(x)
    assert np.all(np.isfinite(h))


def test_pool2d_vmap_of_single_images_equals_batched_call(transform):
    x = _randn(3, 6, 6, 2)
    single = jax.vmap(lambda xi: C.max_pool2d(xi[None], 3, 2, "SAME")[0])
    np.testing.assert_allclose(transform(single)(x), C.max_pool2d(x, 3, 2, "SAME"), rtol=0)


def test_global_avg_pool_is_the_spatial_mean_and_ignores_circular_shifts(transform):
    x = _randn(2, 5, 6, 3)
    f = transform(C.global_avg_pool)
    np.testing.assert_allclose(f(x), np.asarray(x).mean(axis=(1, 2)), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(f(jnp.roll(x, (2, 3), axis=(1, 2))), f(x), rtol=1e-5, atol=1e-6)
    assert f(_randn(2, 7, 3)).shape == (2, 3)  # 1-D signals too
    np.testing.assert_allclose(
        jax.vmap(lambda xi: C.global_avg_pool(xi[None])[0])(x), f(x), rtol=1e-6, atol=1e-7
    )


# ---------------------------------------------------------------------------------------------
# Bad input.

P2 = {"w": jnp.zeros((3, 3, 2, 4)), "b": jnp.zeros((4,))}
P1 = {"w": jnp.zeros((3, 2, 4)), "b": jnp.zeros((4,))}


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: C.conv2d(P2, jnp.zeros((5, 5, 2))), r"rank 4 \(N, H, W, C\), got rank 3"),
        (lambda: C.conv1d(P1, jnp.zeros((2, 5, 5, 2))), r"rank 3 \(N, L, C\), got rank 4"),
        (lambda: C.conv2d(P2, jnp.zeros((1, 5, 5, 3))), "expected input with 2 channels"),
        (lambda: C.conv1d(P1, jnp.zeros((1, 5, 1))), "expected input with 2 channels"),
        (lambda: C.conv2d(P2, jnp.zeros((1, 2, 5, 2)), padding="VALID"), "at least the dilated"),
        (lambda: C.conv2d(P2, jnp.zeros((1, 4, 4, 2)), padding="VALID", dilation=2), "size 5"),
        (lambda: C.conv1d(P1, jnp.zeros((1, 2, 2)), padding="VALID"), "at least the dilated"),
        (lambda: C.conv2d(P2, jnp.zeros((1, 5, 5, 2)), stride=0), "stride to be a positive"),
        (lambda: C.conv2d(P2, jnp.zeros((1, 5, 5, 2)), dilation=-1), "dilation to be a positive"),
        (lambda: C.conv2d(P2, jnp.zeros((1, 5, 5, 2)), padding="FULL"), "padding 'SAME'"),
        (lambda: C.conv2d(P2, jnp.zeros((1, 5, 5, 2)), padding=-1), "non-negative padding"),
        (lambda: C.conv2d({"w": P2["w"]}, jnp.zeros((1, 5, 5, 2))), "keys"),
        (lambda: C.conv2d(P1, jnp.zeros((1, 5, 5, 2))), r"w of shape \(KH, KW, I, O\)"),
        (lambda: C.conv2d(P2, jnp.zeros((1, 5, 5, 2), jnp.int32)), "floating-point"),
        (lambda: C.init_conv2d(jax.random.key(0), 0, 2, 3), "kernel_size"),
        (lambda: C.init_conv2d(jax.random.key(0), (3, 3, 3), 2, 3), "kernel_size"),
        (lambda: C.init_conv2d(jax.random.key(0), 3, 0, 3), "in_dim"),
        (lambda: C.init_conv1d(jax.random.key(0), 3, 2, -4), "out_dim"),
        (lambda: C.max_pool2d(jnp.zeros((1, 4, 4)), 2), "rank 4"),
        (lambda: C.avg_pool1d(jnp.zeros((1, 4, 4, 1)), 2), "rank 3"),
        (lambda: C.max_pool2d(jnp.zeros((1, 4, 4, 1)), 0), "window to be a positive"),
        (lambda: C.avg_pool2d(jnp.zeros((1, 4, 4, 1)), 2, stride=0), "stride to be a positive"),
        (lambda: C.max_pool2d(jnp.zeros((1, 2, 4, 1)), 3), "at least the window"),
        (lambda: C.max_pool1d(jnp.zeros((1, 4, 1)), 3, 1, method="reshape"), "method='reshape'"),
        (lambda: C.max_pool1d(jnp.zeros((1, 4, 1)), 2, method="fast"), "expected method"),
        (lambda: C.max_pool2d(jnp.zeros((1, 0, 4, 1)), 1), "no empty axis"),
        (lambda: C.global_avg_pool(jnp.zeros((2, 3))), r"rank >= 3"),
    ],
)
def test_bad_input_raises_value_error_naming_expected_and_given(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_boundary_checks_fire_at_trace_time_under_jit():
    with pytest.raises(ValueError, match="expected input with 2 channels"):
        jax.jit(C.conv2d)(P2, jnp.zeros((1, 5, 5, 3)))


# ---------------------------------------------------------------------------------------------
# Gradient-check registry (float64, called inside jax.enable_x64(True)).


def _f64(seed, *shape):
    return jnp.asarray(np.random.default_rng(seed).standard_normal(shape), jnp.float64)


def _conv2d_case():
    params = {"w": _f64(1, 2, 3, 2, 3), "b": _f64(2, 3)}
    f = lambda p, x: C.conv2d(p, x, stride=(2, 1), padding=1, dilation=(1, 2))
    return f, (params, _f64(3, 2, 5, 6, 2))


def _conv1d_case():
    params = {"w": _f64(4, 3, 2, 2), "b": _f64(5, 2)}
    return (lambda p, x: C.conv1d(p, x, stride=2)), (params, _f64(6, 2, 7, 2))


def _pool_case(pool, shape):
    def f(x):  # both paths: non-overlapping (reshape) and overlapping, padded (reduce_window)
        return jnp.concatenate(
            [pool(x, 2).ravel(), pool(x, 3, 2, "SAME", method="reduce_window").ravel()]
        )

    return lambda: (f, (jnp.asarray(_distinct(*shape), jnp.float64),))


GRAD_CASES = {
    "jaxnn.layers.conv.conv2d": _conv2d_case,
    "jaxnn.layers.conv.conv1d": _conv1d_case,
    "jaxnn.layers.conv.max_pool2d": _pool_case(C.max_pool2d, (1, 5, 4, 2)),
    "jaxnn.layers.conv.avg_pool2d": _pool_case(C.avg_pool2d, (1, 5, 4, 2)),
    "jaxnn.layers.conv.max_pool1d": _pool_case(C.max_pool1d, (2, 7, 2)),
    "jaxnn.layers.conv.avg_pool1d": _pool_case(C.avg_pool1d, (2, 7, 2)),
    "jaxnn.layers.conv.global_avg_pool": lambda: (C.global_avg_pool, (_f64(7, 2, 3, 4, 2),)),
}
