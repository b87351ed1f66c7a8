"""Tests for jaxnn.data.pipeline: train-only normalization, exactly-once batching, prefetching."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnn.data import Dataset, load
from jaxnn.data.pipeline import (
    Standardizer,
    apply_statistics,
    batches,
    epoch_permutation,
    epoch_plan,
    eval_batches,
    num_batches,
    prefetch_to_device,
    standardize,
    steps_per_epoch,
)

GRAD_CASES = {}  # Standardizer.apply is a method (an affine map); batching is not differentiable


def _toy(n=23, d=3, seed=0):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((n, d)) * [1.0, 5.0, 0.1] + [2.0, -1.0, 7.0]).astype(np.float32)
    return Dataset(x, np.arange(n, dtype=np.int32))  # label = example index, to track examples


# ---- normalization --------------------------------------------------------------------------


def test_standardizer_gives_zero_mean_unit_std_per_feature_on_train():
    ds = _toy()
    st = Standardizer.fit(ds.x, per="feature")
    z = st.apply(ds.x)
    np.testing.assert_allclose(z.mean(0), 0.0, atol=1e-6)
    np.testing.assert_allclose(z.std(0), 1.0, rtol=1e-5)


def test_standardizer_per_channel_has_one_statistic_per_channel():
    x = np.random.default_rng(0).standard_normal((4, 5, 5, 3)).astype(np.float32) + [0, 1, 2]
    st = Standardizer.fit(x, per="channel")
    assert st.mean.shape == (3,)
    z = st.apply(x)
    np.testing.assert_allclose(z.mean((0, 1, 2)), 0.0, atol=1e-6)


def test_constant_feature_is_centred_not_divided_by_zero():
    x = np.ones((6, 2), np.float32)
    x[:, 1] = np.arange(6)
    st = Standardizer.fit(x)
    assert st.std[0] == 1.0
    assert np.isfinite(st.apply(x)).all() and (st.apply(x)[:, 0] == 0).all()


def test_statistics_ignore_val_and_test_changes_leakage():
    splits = load("synthetic:moons", seed=0)
    _, st = standardize(splits)
    corrupted = splits.replace(
        val=Dataset(splits.val.x * 100 + 5, splits.val.y),
        test=splits.test.map(lambda d: Dataset(d.x - 50, d.y)),
    )
    _, st2 = standardize(corrupted)
    assert np.array_equal(st.mean, st2.mean) and np.array_equal(st.std, st2.std)
    # the same statistics do move when the training data moves
    _, st3 = standardize(splits.replace(train=Dataset(splits.train.x + 1, splits.train.y)))
    assert not np.allclose(st.mean, st3.mean)


def test_standardize_applies_train_statistics_to_val_and_sealed_test():
    splits = load("digits", seed=0)
    out, st = standardize(splits)
    assert st.per == "channel" and st.mean.shape == (1,)
    np.testing.assert_allclose(out.val.x, (splits.val.x - st.mean) / st.std)
    np.testing.assert_allclose(
        out.test.unseal().x, (splits.test.unseal().x - st.mean) / st.std, rtol=1e-6
    )


def test_standardize_is_identity_for_language_model_tokens():
    splits = load("pydoc_text", seq_len=16)
    out, st = standardize(splits)
    assert st.per == "none"
    assert out.train.x.dtype == np.int32 and np.array_equal(out.train.x, splits.train.x)


def test_standardizer_apply_composes_with_jit_and_vmap(transform):
    ds = _toy()
    st = Standardizer.fit(ds.x)
    want = (ds.x - st.mean) / st.std
    got = transform(st.apply)(jnp.asarray(ds.x))
    np.testing.assert_allclose(got, want, rtol=1e-6)
    np.testing.assert_allclose(jax.vmap(st.apply)(jnp.asarray(ds.x)), want, rtol=1e-6)


def test_standardizer_apply_rejects_wrong_feature_shape():
    st = Standardizer.fit(_toy().x)
    with pytest.raises(ValueError, match=r"ending in shape \(3,\)"):
        st.apply(np.zeros((2, 4), np.float32))


@pytest.mark.parametrize("per", ["feature", "channel"])
def test_statistics_saved_as_json_rebuild_the_same_standardizer(per):
    x = np.random.default_rng(1).standard_normal((7, 4, 3)).astype(np.float32) * 3 + 0.1
    st = Standardizer.fit(x, per=per)
    again = Standardizer.from_json(json.loads(json.dumps(st.to_json())))
    assert again.per == st.per and again.mean.dtype == st.mean.dtype == np.float32
    assert np.array_equal(again.mean, st.mean) and np.array_equal(again.std, st.std)
    assert np.array_equal(again.apply(x), st.apply(x))


def test_apply_statistics_transforms_new_inputs_as_the_val_split_was():
    splits = load("synthetic:moons", seed=0)
    out, st = standardize(splits)
    saved = json.loads(json.dumps(st.to_json()))
    got = apply_statistics(saved, splits.val.x.astype(np.float64))
    assert got.dtype == np.float32
    assert np.array_equal(got, out.val.x)


def test_apply_statistics_passes_token_ids_through_for_identity_statistics():
    ids = np.arange(12, dtype=np.int32).reshape(3, 4)
    got = apply_statistics(json.loads(json.dumps(Standardizer.identity().to_json())), ids)
    assert got.dtype == np.int32 and np.array_equal(got, ids)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"per": "pixel"}, "per in"),
        ({"mean": [0.0, 1.0]}, "shape"),
        ({"std": [1.0, 0.0, 1.0]}, "positive"),
        ({"mean": ["a", 1.0, 2.0]}, "numbers"),
    ],
)
def test_malformed_saved_statistics_are_rejected(change, match):
    saved = Standardizer.fit(_toy().x).to_json()
    with pytest.raises(ValueError, match=match):
        Standardizer.from_json({**saved, **change})
    missing = {k: v for k, v in saved.items() if k != "std"}
    with pytest.raises(ValueError, match="expected a dict with per"):
        Standardizer.from_json(missing)


# ---- batching -------------------------------------------------------------------------------


def test_epoch_permutation_is_a_function_of_seed_and_epoch():
    a = epoch_permutation(50, seed=1, epoch=2)
    assert np.array_equal(a, epoch_permutation(50, seed=1, epoch=2))
    assert np.array_equal(np.sort(a), np.arange(50))
    assert not np.array_equal(a, epoch_permutation(50, seed=1, epoch=3))
    assert not np.array_equal(a, epoch_permutation(50, seed=2, epoch=2))


@pytest.mark.parametrize(("n", "b", "drop", "want"), [(23, 5, True, 4), (23, 5, False, 5)])
def test_num_batches_floors_or_ceils(n, b, drop, want):
    assert num_batches(n, b, drop_remainder=drop) == want


def test_every_example_appears_exactly_once_per_epoch_without_drop():
    ds = _toy()
    seen = np.concatenate([y for _, y in batches(ds, 5, seed=0, epoch=0, drop_remainder=False)])
    assert np.array_equal(np.sort(seen), np.arange(len(ds)))


def test_drop_remainder_gives_full_batches_of_distinct_examples_in_shuffled_order():
    ds = _toy()
    out = list(batches(ds, 5, seed=0, epoch=0))
    assert [len(x) for x, _ in out] == [5] * 4
    seen = np.concatenate([y for _, y in out])
    assert len(set(seen.tolist())) == 20
    assert not np.array_equal(seen, np.arange(20))  # shuffled
    assert np.array_equal(seen, epoch_permutation(len(ds), seed=0, epoch=0)[:20])
    for x, y in out:
        np.testing.assert_array_equal(x, ds.x[y])  # inputs stay paired with their targets


def test_shuffle_false_keeps_stored_order():
    ds = _toy()
    seen = np.concatenate([y for _, y in batches(ds, 4, seed=0, epoch=5, shuffle=False)])
    assert np.array_equal(seen, np.arange(20))


def test_start_resumes_with_the_remaining_batches_of_the_same_epoch():
    ds = _toy()
    full = list(batches(ds, 3, seed=4, epoch=1))
    resumed = list(batches(ds, 3, seed=4, epoch=1, start=4))
    assert len(resumed) == len(full) - 4
    for (xa, ya), (xb, yb) in zip(full[4:], resumed, strict=True):
        assert np.array_equal(xa, xb) and np.array_equal(ya, yb)
    assert list(batches(ds, 3, seed=4, epoch=1, start=len(full))) == []


def test_batch_size_larger_than_split_is_rejected_with_drop_remainder():
    with pytest.raises(ValueError, match="batch_size <= 23"):
        batches(_toy(), 24, seed=0, epoch=0)


@pytest.mark.parametrize("multiple", [1, 2, 4])
def test_epoch_plan_sees_every_example_once_with_the_last_batch(multiple):
    plan = epoch_plan(23, 4, seed=0, epoch=1, last_batch="train", multiple=multiple)
    assert plan.steps == steps_per_epoch(23, 4) == 6 and plan.sizes == [4] * 5 + [3]
    real = plan.last[plan.last_weight == 1]
    seen = np.concatenate([plan.full.ravel(), real])
    assert sorted(seen.tolist()) == list(range(23))  # 5 x 4 + 3 = 23, each once
    assert len(plan.last) % multiple == 0 and len(plan.last) == -(-3 // multiple) * multiple
    assert plan.last_weight.sum() == 3 and set(plan.last_weight[3:].tolist()) <= {0.0}


def test_epoch_plan_full_batches_are_those_batches_yields():
    ds = _toy(23)
    plan = epoch_plan(23, 4, seed=5, epoch=2)
    for idx, (_, y) in zip(plan.full, batches(ds, 4, seed=5, epoch=2), strict=True):
        np.testing.assert_array_equal(ds.y[idx], y)


def test_epoch_plan_drops_the_last_batch_when_asked():
    plan = epoch_plan(23, 4, seed=0, epoch=0, last_batch="drop")
    assert plan.last is None and plan.steps == steps_per_epoch(23, 4, "drop") == 5
    assert plan.sizes == [4] * 5
    whole = epoch_plan(24, 4, seed=0, epoch=0)  # no remainder: nothing to train or drop
    assert whole.last is None and whole.steps == 6


def test_epoch_plan_rejects_a_batch_larger_than_the_split_and_an_unknown_mode():
    with pytest.raises(ValueError, match="batch_size <= 23"):
        epoch_plan(23, 24, seed=0, epoch=0)
    with pytest.raises(ValueError, match="last_batch"):
        epoch_plan(23, 4, seed=0, epoch=0, last_batch="pad")


def test_start_outside_the_epoch_is_rejected():
    with pytest.raises(ValueError, match=r"start in \[0, 4\]"):
        batches(_toy(), 5, seed=0, epoch=0, start=5)


def test_eval_batches_count_every_example_once_with_one_shape():
    ds = _toy()
    out = list(eval_batches(ds, 5))
    assert {x.shape for x, _, _ in out} == {(5, 3)}
    weights = np.concatenate([w for _, _, w in out])
    labels = np.concatenate([y for _, y, _ in out])
    assert weights.sum() == len(ds)
    assert np.array_equal(labels[weights == 1.0], np.arange(len(ds)))
    assert np.array_equal(weights, (np.arange(25) < 23).astype(np.float32))


def test_eval_batches_weighted_mean_equals_plain_mean_under_one_jit_trace():
    ds = _toy()
    traces = []

    @jax.jit
    def weighted_sum(x, w):
        traces.append(x.shape)
        return (x[:, 1] * w).sum(), w.sum()

    total = count = 0.0
    for x, _, w in eval_batches(ds, 5):
        s, c = weighted_sum(x, w)
        total, count = total + s, count + c
    assert len(traces) == 1
    np.testing.assert_allclose(total / count, ds.x[:, 1].mean(), rtol=1e-5)


# ---- prefetch -------------------------------------------------------------------------------


def test_prefetch_to_device_yields_the_same_items_in_order_as_device_arrays():
    ds = _toy()
    host = list(batches(ds, 4, seed=0, epoch=0))
    dev = list(prefetch_to_device(batches(ds, 4, seed=0, epoch=0), size=2))
    assert len(dev) == len(host)
    for (xh, yh), (xd, yd) in zip(host, dev, strict=True):
        assert isinstance(xd, jax.Array)
        assert np.array_equal(np.asarray(xd), xh) and np.array_equal(np.asarray(yd), yh)


def test_prefetch_to_device_raises_the_source_error_in_the_consumer():
    def source():
        yield np.zeros(2)
        raise RuntimeError("disk on fire")

    it = prefetch_to_device(source())
    next(it)
    with pytest.raises(RuntimeError, match="disk on fire"):
        next(it)
    with pytest.raises(StopIteration):
        next(it)


def test_prefetch_to_device_close_stops_the_background_thread():
    it = prefetch_to_device(iter(np.zeros((100, 2))), size=1)
    next(it)
    it.close()
    it._thread.join(timeout=5)
    assert not it._thread.is_alive()
