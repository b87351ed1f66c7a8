"""The data containers: validated once, then read-only; the info travels with its statistics."""

import numpy as np
import pytest

from jaxnn.data import Dataset, DatasetInfo, Splits, load


def test_dataset_arrays_are_read_only_views_so_nan_cannot_be_written_after_validation():
    x = np.ones((4, 2), np.float32)
    ds = Dataset(x, np.arange(4))
    with pytest.raises(ValueError, match="read-only"):
        ds.x[0, 0] = np.nan
    x[0, 0] = 5.0  # the caller's own array stays writable
    assert ds.x[0, 0] == 5.0


def test_loaded_splits_cannot_be_poisoned_in_place():
    splits = load("synthetic:moons", seed=0)
    for arr in (splits.train.x, splits.train.y, splits.val.x):
        with pytest.raises(ValueError, match="read-only"):
            arr[0] = np.nan if arr.dtype.kind == "f" else -1


def test_non_finite_inputs_are_refused_with_a_count():
    with pytest.raises(ValueError, match="expected finite values in x, got 2 NaN/inf.*example 1"):
        Dataset(np.array([[0.0, 1.0], [np.inf, np.nan]]), np.array([0, 1]))


def test_labels_outside_the_classes_are_refused_naming_the_split():
    info = DatasetInfo("t", "classification", (2,), 2)
    good, bad = (
        Dataset(np.zeros((3, 2)), np.array([0, 1, 0])),
        Dataset(np.zeros((2, 2)), np.array([0, 2])),
    )
    with pytest.raises(
        ValueError, match=r"Splits\[t\]\.val: expected labels in \[0, 2\), got values in \[0, 2\]"
    ):
        Splits(good, bad, good, info)


def test_info_replace_keeps_the_other_fields():
    info = DatasetInfo("t", "classification", (2,), 2, class_names=("a", "b"))
    new = info.replace(normalization={"per": "none"})
    assert new.normalization == {"per": "none"} and new.class_names == ("a", "b")
    assert info.normalization is None
