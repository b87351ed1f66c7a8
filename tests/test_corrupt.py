"""Tests for jaxnn.data.corrupt: fault injection whose record states exactly what changed."""

import numpy as np
import pytest

from jaxnn.data import Dataset
from jaxnn.data.corrupt import class_imbalance, distribution_shift, label_noise, spurious_feature

GRAD_CASES = {}  # dataset-to-dataset transformations in NumPy: nothing is differentiable


def _data(n=200, c=4, seed=0, shape=(5,)):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, *shape)).astype(np.float32)
    return Dataset(x, (np.arange(n) % c).astype(np.int32))


def test_label_noise_changes_exactly_the_recorded_labels_to_other_classes():
    ds = _data()
    noisy, rec = label_noise(ds, 0.3, num_classes=4, seed=0)
    changed = np.flatnonzero(noisy.y != ds.y)
    assert np.array_equal(changed, rec["indices"])
    assert len(changed) == 60
    assert np.array_equal(rec["old_labels"], ds.y[changed])
    assert np.array_equal(rec["new_labels"], noisy.y[changed])
    assert noisy.y.min() >= 0 and noisy.y.max() < 4
    assert np.array_equal(noisy.x, ds.x)


def test_label_noise_is_deterministic_by_seed_and_leaves_input_untouched():
    ds = _data()
    before = ds.y.copy()
    a, _ = label_noise(ds, 0.2, num_classes=4, seed=1)
    b, _ = label_noise(ds, 0.2, num_classes=4, seed=1)
    c, _ = label_noise(ds, 0.2, num_classes=4, seed=2)
    assert np.array_equal(a.y, b.y) and not np.array_equal(a.y, c.y)
    assert np.array_equal(ds.y, before)


def test_label_noise_rejects_labels_out_of_range():
    with pytest.raises(ValueError, match=r"labels in \[0, 3\)"):
        label_noise(_data(c=4), 0.1, num_classes=3, seed=0)


def test_class_imbalance_shrinks_minority_classes_to_the_ratio():
    ds = _data(n=400, c=4)
    out, rec = class_imbalance(ds, 0.1, seed=0, minority_classes=[1, 3])
    assert rec["counts_before"] == {0: 100, 1: 100, 2: 100, 3: 100}
    assert rec["counts_after"] == {0: 100, 1: 10, 2: 100, 3: 10}
    assert np.array_equal(np.bincount(out.y), [100, 10, 100, 10])
    assert np.array_equal(out.x, ds.x[rec["kept_indices"]])
    assert set(ds.y[rec["dropped_indices"]].tolist()) == {1, 3}


def test_class_imbalance_defaults_to_the_upper_half_of_the_classes():
    _, rec = class_imbalance(_data(n=400, c=4), 0.5, seed=0)
    assert rec["minority_classes"] == (2, 3)


def test_class_imbalance_rejects_absent_minority_class():
    with pytest.raises(ValueError, match="absent classes \\[7\\]"):
        class_imbalance(_data(c=4), 0.5, seed=0, minority_classes=[7])


@pytest.mark.parametrize("kind", ["gaussian_noise", "scale", "offset"])
def test_distribution_shift_moves_inputs_in_proportion_to_severity_and_keeps_labels(kind):
    ds = _data()
    small, rec_small = distribution_shift(ds, kind=kind, severity=0.1, seed=0)
    large, rec_large = distribution_shift(ds, kind=kind, severity=1.0, seed=0)
    assert np.array_equal(small.y, ds.y)
    assert 0 < rec_small["mean_abs_change"] < rec_large["mean_abs_change"]
    np.testing.assert_allclose(
        rec_large["mean_abs_change"], np.abs(large.x - ds.x).mean(), rtol=1e-5
    )


def test_offset_shift_adds_severity_times_the_input_std():
    ds = _data()
    out, rec = distribution_shift(ds, kind="offset", severity=0.5, seed=0)
    np.testing.assert_allclose(out.x - ds.x, 0.5 * ds.x.std(), rtol=1e-5)
    assert rec["kind"] == "offset"


def test_distribution_shift_rejects_unknown_kind():
    with pytest.raises(ValueError, match="gaussian_noise"):
        distribution_shift(_data(), kind="blur", severity=1.0, seed=0)


def test_spurious_feature_predicts_labels_in_train_but_not_in_test():
    train, test = _data(n=2000, c=4, seed=0), _data(n=2000, c=4, seed=1)
    (tr, te), rec = spurious_feature(train, test, strength=0.9, seed=0, amplitude=3.0)
    assert abs(rec["train_agreement"] - 0.9) < 0.03
    assert abs(rec["test_agreement"] - 0.25) < 0.04
    patterns = rec["patterns"].reshape(4, -1)

    def shortcut_accuracy(ds):  # classify by the best-matching planted pattern
        guess = np.argmax(ds.x.reshape(len(ds), -1) @ patterns.T, axis=1)
        return (guess == ds.y).mean()

    assert shortcut_accuracy(tr) > 0.8
    assert shortcut_accuracy(te) < 0.35
    assert np.array_equal(tr.y, train.y) and tr.x.shape == train.x.shape


def test_spurious_feature_rejects_mismatched_example_shapes():
    with pytest.raises(ValueError, match="same shape"):
        spurious_feature(_data(), _data(shape=(6,)), strength=0.5, seed=0)
