"""Tests for jaxnn.data.augment: pure, key-deterministic, jittable training augmentations."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnn.data import DatasetInfo
from jaxnn.data.augment import gaussian_noise, get, random_crop, random_shift
from jaxnn.gradcheck import check_grads

IMAGE = DatasetInfo("img", "classification", (6, 6, 2), 10, modality="image")
SIGNAL = DatasetInfo("sig", "classification", (12,), 10, modality="signal")
TABLE = DatasetInfo("tab", "classification", (3,), 2, modality="tabular")
TEXT = DatasetInfo("txt", "language_model", (8,), 20, modality="text")


def _images(n=4, dtype=jnp.float32):
    return jax.random.uniform(jax.random.key(1), (n, 6, 6, 2), dtype) + 0.5  # (N, H, W, C)


def _signals(n=4, dtype=jnp.float32):
    return jax.random.normal(jax.random.key(2), (n, 12), dtype) + 3.0  # (N, L)


def _case_shift():
    return lambda x: random_shift(jax.random.key(0), x, max_shift=1), (_images(2, jnp.float64),)


def _case_crop():
    f = lambda x: random_crop(jax.random.key(0), x, scale=0.7)
    return f, (_images(2, jnp.float64),)


def _case_noise():
    f = lambda x: gaussian_noise(jax.random.key(0), x, sigma=0.3) ** 2
    return f, (_signals(2, jnp.float64),)


GRAD_CASES = {
    "jaxnn.data.augment.random_shift": _case_shift,
    "jaxnn.data.augment.random_crop": _case_crop,
    "jaxnn.data.augment.gaussian_noise": _case_noise,
}

TRAIN_AUGMENTS = [
    (IMAGE, "shift", _images),
    (IMAGE, "crop", _images),
    (IMAGE, "noise", _images),
    (IMAGE, "shift+noise", _images),
    (SIGNAL, "shift", _signals),
    (SIGNAL, "circular_shift", _signals),
    (SIGNAL, "noise", _signals),
]
IDS = [f"{info.modality}-{name}" for info, name, _ in TRAIN_AUGMENTS]


@pytest.mark.parametrize(("info", "name", "make"), TRAIN_AUGMENTS, ids=IDS)
def test_augment_is_deterministic_given_key_and_changes_the_batch(transform, info, name, make):
    f = transform(get(name, info))
    x = make()
    a, b = f(jax.random.key(5), x), f(jax.random.key(5), x)
    c = f(jax.random.key(6), x)
    assert a.shape == x.shape and a.dtype == x.dtype
    assert np.array_equal(a, b)
    assert not np.array_equal(a, x)
    assert not np.array_equal(a, c)


@pytest.mark.parametrize(("info", "name", "make"), TRAIN_AUGMENTS, ids=IDS)
def test_augment_of_one_example_vmaps_over_keys(info, name, make):
    f = get(name, info)
    x = make()
    keys = jax.random.split(jax.random.key(3), len(x))
    one = lambda k, xi: f(k, xi[None])[0]
    got = jax.vmap(one)(keys, x)
    want = jnp.stack([one(k, xi) for k, xi in zip(keys, x, strict=True)])
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


def test_eager_and_jit_draw_the_same_augmentation():
    f = get("shift+noise", IMAGE)
    x = _images()
    # equal up to float32 rounding: jit may fuse ``x + sigma * eps`` into one multiply-add
    np.testing.assert_allclose(jax.jit(f)(jax.random.key(0), x), f(jax.random.key(0), x), rtol=1e-6)


def test_padded_image_shift_is_one_of_the_allowed_translations():
    x = np.asarray(_images())
    y = np.asarray(random_shift(jax.random.key(0), x, max_shift=1))
    for xi, yi in zip(x, y, strict=True):
        candidates = []
        for dy, dx in itertools.product(range(-1, 2), repeat=2):
            padded = np.pad(xi, ((1, 1), (1, 1), (0, 0)))
            candidates.append(padded[1 - dy : 7 - dy, 1 - dx : 7 - dx])
        assert any(np.array_equal(yi, c) for c in candidates)


def test_circular_shift_is_a_roll_of_each_signal():
    x = np.asarray(_signals())
    y = np.asarray(
        random_shift(jax.random.key(0), x, max_shift=3, spatial_axes=(1,), circular=True)
    )
    for xi, yi in zip(x, y, strict=True):
        assert any(np.array_equal(yi, np.roll(xi, d)) for d in range(-3, 4))


def test_zero_max_shift_is_the_identity():
    x = _images()
    assert np.array_equal(random_shift(jax.random.key(0), x, max_shift=0), x)


def test_full_scale_crop_is_the_identity():
    x = _images()
    np.testing.assert_allclose(random_crop(jax.random.key(0), x, scale=1.0), x, rtol=1e-6)


def test_noise_has_the_requested_standard_deviation():
    x = jnp.zeros((200, 50))
    noise = gaussian_noise(jax.random.key(0), x, sigma=0.3)
    assert abs(float(noise.std()) - 0.3) < 0.01 and abs(float(noise.mean())) < 0.01


def test_none_returns_the_batch_unchanged_for_tokens():
    x = jnp.arange(16).reshape(2, 8)
    assert get("none", TEXT)(jax.random.key(0), x) is x


@pytest.mark.parametrize(("info", "name"), [(TEXT, "noise"), (TABLE, "shift"), (SIGNAL, "crop")])
def test_augment_that_does_not_fit_the_modality_is_rejected_with_choices(info, name):
    with pytest.raises(ValueError, match="expected one of"):
        get(name, info)


def test_option_no_augmentation_takes_is_rejected():
    with pytest.raises(ValueError, match="sigma"):
        get("shift", IMAGE, sigma=0.1)


def test_random_crop_rejects_non_image_rank():
    with pytest.raises(ValueError, match="rank 4"):
        random_crop(jax.random.key(0), _signals(), scale=0.5)


@pytest.mark.parametrize("name", sorted(GRAD_CASES))
def test_augmentation_gradients_match_finite_differences(x64, name):
    f, args = GRAD_CASES[name]()
    check_grads(f, args, order=1, modes=("rev",))
