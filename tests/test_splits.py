"""Tests for jaxnn.data.splits: the one train/validation/test routine every source goes through."""

import numpy as np
import pytest

from jaxnn.data import Dataset, load
from jaxnn.data.splits import TEST_SEED, check_seed, split, split_indices
from jaxnn.errors import UserError

GRAD_CASES = {}  # index arithmetic on NumPy arrays: nothing is differentiable


def _data(n=100, classes=4):
    """x holds each example's index, so a split can be traced back to the examples it took."""
    x = np.arange(n, dtype=np.float32)[:, None]  # (N, 1)
    return Dataset(x, (np.arange(n) % classes).astype(np.int32))


def _rows(d: Dataset) -> set[int]:
    return set(d.x[:, 0].astype(int).tolist())


def _split(data, seed=0, **kw):
    return split("t", data, seed=seed, val_fraction=0.1, test_fraction=0.2, stratify=True, **kw)


# ---- split_indices --------------------------------------------------------------------------


def test_split_indices_partition_and_keep_class_proportions():
    y = np.repeat(np.arange(4), 25)
    kept, held = split_indices(y, 0.2, seed=3)
    assert sorted(np.concatenate([kept, held]).tolist()) == list(range(100))
    assert np.bincount(y[held]).tolist() == [5, 5, 5, 5]


def test_split_indices_partition_and_hold_out_rounded_fraction():
    y = np.repeat(np.arange(3), [7, 11, 13])
    kept, held = split_indices(y, 0.25, seed=0)
    assert len(held) == round(0.25 * 31)
    assert np.array_equal(np.sort(np.concatenate([kept, held])), np.arange(31))


def test_split_indices_without_stratification_draws_from_every_example():
    y = np.zeros(40, np.int32)
    held = {tuple(split_indices(y, 0.25, seed=s, stratify=False)[1]) for s in range(5)}
    assert len(held) == 5 and all(len(h) == 10 for h in held)


def test_split_indices_rejects_fraction_that_empties_a_part():
    with pytest.raises(ValueError, match="non-empty"):
        split_indices(np.zeros(5, int), 0.01, seed=0)


@pytest.mark.parametrize("seed", [-1, 1.0, True, "0", None])
def test_check_seed_refuses_anything_but_a_non_negative_integer(seed):
    with pytest.raises(ValueError, match="non-negative integer"):
        check_seed(seed)


def test_check_seed_accepts_numpy_integers_as_python_ints():
    assert check_seed(np.int64(7)) == 7 and type(check_seed(np.int64(7))) is int


# ---- split ----------------------------------------------------------------------------------


def test_split_partitions_the_data_into_train_val_and_test():
    train, val, test = _split(_data())
    assert (len(train), len(val), len(test)) == (72, 8, 20)
    assert _rows(train) | _rows(val) | _rows(test) == set(range(100))
    assert not (_rows(train) & _rows(val) or _rows(train) & _rows(test) or _rows(val) & _rows(test))


def test_split_carves_the_test_set_with_the_fixed_seed_then_validation_with_seed():
    data = _data()
    rest, held = split_indices(data.y, 0.2, seed=TEST_SEED)
    kept, val_idx = split_indices(data.y[rest], 0.1, seed=5)
    train, val, test = _split(data, seed=5)
    assert np.array_equal(test.x, data.x[held]) and np.array_equal(val.x, data.x[rest][val_idx])
    assert np.array_equal(train.x, data.x[rest][kept])


def test_seed_moves_the_validation_split_and_never_the_test_split():
    data = _data()
    a, b = _split(data, seed=0), _split(data, seed=1)
    assert np.array_equal(a[2].x, b[2].x)
    assert _rows(a[1]) != _rows(b[1])


def test_test_seed_moves_the_test_split():
    data = _data()
    assert _rows(_split(data, test_seed=1)[2]) != _rows(_split(data, test_seed=2)[2])


def test_each_carved_part_keeps_the_class_proportions():
    train, val, test = _split(_data(200, classes=4))
    assert np.bincount(test.y).tolist() == [10] * 4
    assert np.bincount(val.y).tolist() == [4] * 4
    assert np.bincount(train.y).tolist() == [36] * 4


def test_a_source_s_own_test_set_is_kept_and_validation_carved_from_training():
    data, own = _data(), _data(7)
    train, val, test = _split(data, test=own)
    assert test is own
    assert (len(train), len(val)) == (90, 10) and _rows(train) | _rows(val) == set(range(100))


def test_a_source_s_own_validation_and_test_sets_leave_training_untouched():
    data, own_val, own_test = _data(), _data(5), _data(6)
    train, val, test = _split(data, val=own_val, test=own_test)
    assert (train, val, test) == (data, own_val, own_test)


def test_own_validation_without_test_carves_the_test_set_only():
    data, own_val = _data(), _data(5)
    train, val, test = _split(data, val=own_val)
    assert val is own_val and (len(train), len(test)) == (80, 20)


@pytest.mark.parametrize(("part", "kw"), [("test", {"test_fraction": 0.001}), ("validation", {})])
def test_a_part_too_small_to_carve_names_the_source_and_the_part(part, kw):
    kw = {"val_fraction": 0.1, "test_fraction": 0.2, **kw}
    with pytest.raises(UserError, match=rf"^csv:d\.csv: cannot carve a {part} split from \d+"):
        split("csv:d.csv", _data(6, classes=2), seed=0, stratify=True, **kw)


def test_every_source_family_splits_through_the_routine(tmp_path):
    """digits, a synthetic set and a csv file refuse a too-small part with the routine's words."""
    rows = "".join(f"{i},{i % 2}\n" for i in range(30))
    (tmp_path / "d.csv").write_text("a,label\n" + rows)
    for name, options in [
        ("digits", {"test_fraction": 1e-4}),
        ("synthetic:moons", {"n": 4}),
        (f"csv:{tmp_path / 'd.csv'}", {"test_fraction": 0.01}),
    ]:
        with pytest.raises(UserError, match="cannot carve a (test|validation) split from"):
            load(name, **options)
