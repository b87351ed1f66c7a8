"""Tests for jaxnn.data.datasets and builtin: offline, seeded stratified splits, sealed test."""

import random

import numpy as np
import pytest

from jaxnn.data import (
    NAMES,
    Dataset,
    DatasetInfo,
    SealedDataset,
    Splits,
    builtin,
    load,
)
from jaxnn.data.pipeline import standardize

GRAD_CASES = {}  # loaders build NumPy arrays; nothing here is differentiable

BUILTIN = [n for n in NAMES if ":" not in n or n.startswith("synthetic:")]
OPTIONS = {"pydoc_text": {"seq_len": 16}}
EXPECTED = {
    # name: (input_shape, task, num_classes, x dtype, y dtype)
    "mnist1d": ((40,), "classification", 10, np.float32, np.int32),
    "digits": ((8, 8, 1), "classification", 10, np.float32, np.int32),
    "mnist5k": ((28, 28, 1), "classification", 10, np.float32, np.int32),
    "pydoc_text": ((16,), "language_model", None, np.int32, np.int32),
    "synthetic:moons": ((2,), "classification", 2, np.float32, np.int32),
    "synthetic:spirals": ((2,), "classification", 2, np.float32, np.int32),
    "synthetic:xor": ((2,), "classification", 2, np.float32, np.int32),
    "synthetic:sine": ((1,), "regression", 1, np.float32, np.float32),
}


def _load(name, seed=0, **kw):
    return load(name, seed=seed, **{**OPTIONS.get(name, {}), **kw})


def _rng_states_equal(a, b):
    return a[0] == b[0] and np.array_equal(a[1], b[1]) and a[2:] == b[2:]


def test_names_cover_every_builtin_and_tfds():
    assert set(EXPECTED) == set(BUILTIN)
    assert "tfds:<name>" in NAMES


@pytest.mark.parametrize("name", BUILTIN)
def test_load_gives_documented_shapes_and_dtypes(name):
    splits = _load(name)
    shape, task, num_classes, x_dtype, y_dtype = EXPECTED[name]
    test = splits.test.unseal("shape check")
    assert splits.info.input_shape == shape and splits.info.task == task
    if num_classes is not None:
        assert splits.info.num_classes == num_classes
    for ds in (splits.train, splits.val, test):
        assert ds.x.shape[1:] == shape
        assert ds.x.dtype == x_dtype and ds.y.dtype == y_dtype
        assert len(ds) > 0


@pytest.mark.parametrize("name", BUILTIN)
def test_same_seed_gives_same_bytes_and_keeps_global_random_state(name):
    np.random.seed(123)
    random.seed(123)
    before_np, before_py = np.random.get_state(), random.getstate()
    a, b = _load(name, seed=3), _load(name, seed=3)
    assert _rng_states_equal(np.random.get_state(), before_np)
    assert random.getstate() == before_py
    for part in ("train", "val"):
        assert getattr(a, part).x.tobytes() == getattr(b, part).x.tobytes()
        assert getattr(a, part).y.tobytes() == getattr(b, part).y.tobytes()
    assert a.test.unseal().x.tobytes() == b.test.unseal().x.tobytes()


@pytest.mark.parametrize("name", ["digits", "mnist5k", "mnist1d"])
def test_seed_moves_validation_split_but_not_test_set(name):
    a, b = load(name, seed=0), load(name, seed=1)
    assert not np.array_equal(a.val.y, b.val.y) or not np.array_equal(a.val.x, b.val.x)
    assert np.array_equal(a.test.unseal().x, b.test.unseal().x)


def test_synthetic_data_depends_on_seed():
    a, b = load("synthetic:moons", seed=0), load("synthetic:moons", seed=1)
    assert not np.array_equal(a.train.x, b.train.x)


def test_mnist1d_has_3600_train_400_val_and_official_1000_test():
    splits = load("mnist1d")
    x, y, x_test, y_test = builtin._mnist1d_arrays(True)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (3600, 400, 1000)
    test = splits.test.unseal()
    assert np.array_equal(test.x, x_test) and np.array_equal(test.y, y_test)
    merged = np.concatenate([splits.train.x, splits.val.x])
    assert sorted(map(bytes, merged)) == sorted(map(bytes, x))  # train + val = the 4000 train


def test_mnist1d_generation_is_offline_matches_package_and_disk_cache_and_keeps_global_state(
    tmp_path, monkeypatch
):
    import requests
    from mnist1d.data import get_dataset_args, make_dataset

    def no_network(*args, **kwargs):
        raise AssertionError("mnist1d tried to download")

    monkeypatch.setattr(requests, "get", no_network)
    monkeypatch.setenv("JAXNN_CACHE_DIR", str(tmp_path))
    np.random.seed(7)
    before = np.random.get_state()
    fresh = builtin._mnist1d_arrays.__wrapped__(True)  # generates and writes the cache
    assert _rng_states_equal(np.random.get_state(), before)
    assert len(list(tmp_path.glob("mnist1d-*.npz"))) == 1
    cached = builtin._mnist1d_arrays.__wrapped__(True)  # reads the file
    for a, b in zip(fresh, cached, strict=True):
        assert np.array_equal(a, b)
    ref = make_dataset(get_dataset_args())
    assert np.allclose(fresh[0], ref["x"].astype(np.float32))
    assert np.array_equal(fresh[3], ref["y_test"])


def test_a_zeroed_mnist1d_cache_fails_its_checksum_and_is_regenerated(tmp_path, monkeypatch):
    monkeypatch.setenv("JAXNN_CACHE_DIR", str(tmp_path))
    fresh = builtin._mnist1d_arrays.__wrapped__(True)
    (path,) = tmp_path.glob("mnist1d-*.npz")
    with np.load(path) as f:
        kept = {k: f[k] for k in f.files}
    np.savez(path, **{**kept, "x": np.zeros_like(kept["x"])})  # right shapes, wrong values
    with pytest.warns(UserWarning, match="failed its checksum; regenerating"):
        again = builtin._mnist1d_arrays.__wrapped__(True)
    assert np.array_equal(again[0], fresh[0])
    with np.load(path) as f:
        assert np.array_equal(f["x"], fresh[0])  # the file was rewritten


def test_digits_equal_scikit_learn_scaled_to_unit_interval():
    load_digits = pytest.importorskip("sklearn.datasets").load_digits  # optional cross-check

    x, y = builtin._digits_arrays()
    ref = load_digits()
    assert np.array_equal(x.reshape(-1, 64), (ref.data / 16.0).astype(np.float32))
    assert np.array_equal(y, ref.target)


def test_mnist5k_is_5000_real_digits_in_unit_interval():
    x, y = builtin._mnist5k_arrays()
    assert x.shape == (5000, 28, 28, 1)
    assert x.min() == 0.0 and x.max() == 1.0
    assert np.bincount(y).min() > 400  # every digit present, roughly balanced
    assert (x.reshape(5000, -1) > 0).mean() < 0.3  # mostly black background, like MNIST


@pytest.mark.parametrize("name", ["mnist1d", "digits", "synthetic:spirals"])
def test_validation_split_keeps_class_proportions(name):
    splits = load(name, seed=0)
    train_val = np.concatenate([splits.train.y, splits.val.y])
    share = len(splits.val) / len(train_val)
    for c in range(splits.info.num_classes):
        expected = share * (train_val == c).sum()
        assert abs((splits.val.y == c).sum() - expected) < 1.0 + 1e-9


def test_pydoc_text_splits_are_contiguous_ranges_with_train_only_vocabulary():
    from jaxnn.data.datasets import pydoc_corpus

    seq_len = 16
    splits = load("pydoc_text", seq_len=seq_len)
    tok, text = splits.info.tokenizer, pydoc_corpus()
    a, b = int(len(text) * 0.8), int(len(text) * 0.9)
    assert tok.chars == tuple(sorted(set(text[:a])))
    assert splits.info.num_classes == tok.vocab_size
    assert tok.decode(splits.train.x[0]) == text[:seq_len]
    assert tok.decode(splits.val.x[0]) == text[a : a + seq_len].translate(
        {ord(c): "\ufffd" for c in set(text[a:]) - set(text[:a])}
    )
    test = splits.test.unseal()
    assert len(test) == (len(text) - b - seq_len - 1) // seq_len + 1  # windows of the last range
    assert np.array_equal(test.x[:, 1:], test.y[:, :-1])  # targets are inputs shifted by one
    assert len(splits.train) == (a - seq_len - 1) // seq_len + 1
    assert len(splits.train) * seq_len + 1 <= a  # no training window reaches the validation range


def test_pydoc_text_train_stride_makes_every_training_offset_a_window_and_leaves_val_alone():
    from jaxnn.data.datasets import pydoc_corpus

    seq_len = 16
    plain = load("pydoc_text", seq_len=seq_len)
    every = load("pydoc_text", seq_len=seq_len, train_stride=1)
    a = int(len(pydoc_corpus()) * 0.8)
    assert len(every.train) == a - seq_len  # one window per offset whose target fits
    tok = every.info.tokenizer
    assert tok.decode(every.train.x[5]) == pydoc_corpus()[5 : 5 + seq_len]
    assert np.array_equal(every.val.x, plain.val.x) and len(every.test) == len(plain.test)


def test_pydoc_text_bpe_option_builds_a_byte_level_vocabulary():
    splits = load("pydoc_text", seq_len=32, tokenizer="bpe", vocab_size=300)
    assert splits.info.num_classes == 300
    assert splits.train.x.max() < 300 and splits.train.x.max() >= 256


def test_sine_targets_are_sine_of_inputs_plus_noise():
    splits = load("synthetic:sine", noise=0.1)
    resid = splits.train.y - np.sin(splits.train.x)
    assert abs(resid.std() - 0.1) < 0.02


def test_xor_labels_are_sign_agreement_without_noise():
    splits = load("synthetic:xor")
    x, y = splits.train.x, splits.train.y
    assert np.array_equal(y, (x[:, 0] * x[:, 1] > 0).astype(np.int32))


def test_test_split_is_sealed_and_every_unseal_is_counted():
    splits = load("synthetic:moons")
    assert isinstance(splits.test, SealedDataset)
    assert not hasattr(splits.test, "x")
    assert splits.test.unseal_count == 0
    normalized, _ = standardize(splits)
    assert normalized.test.unseal_count == 0  # standardizing does not look at the test set
    normalized.test.unseal("final score")
    assert splits.test.unseal_count == 1 and normalized.test.unseal_log == ("final score",)


def test_dataset_rejects_mismatched_lengths():
    with pytest.raises(ValueError, match="len\\(x\\) == len\\(y\\)"):
        Dataset(np.zeros((3, 2), np.float32), np.zeros(4, np.int32))


def test_dataset_rejects_empty_split():
    with pytest.raises(ValueError, match="at least one example"):
        Dataset(np.zeros((0, 2), np.float32), np.zeros(0, np.int32))


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_dataset_rejects_non_finite_features(bad):
    x = np.zeros((3, 2), np.float32)
    x[1, 1] = bad
    with pytest.raises(ValueError, match="finite"):
        Dataset(x, np.zeros(3, np.int32))


def test_splits_reject_labels_out_of_range():
    info = DatasetInfo("toy", "classification", (2,), 3)
    ok = Dataset(np.zeros((2, 2), np.float32), np.array([0, 2], np.int32))
    bad = Dataset(np.zeros((2, 2), np.float32), np.array([0, 3], np.int32))
    Splits(ok, ok, ok, info)
    with pytest.raises(ValueError, match=r"labels in \[0, 3\)"):
        Splits(ok, bad, ok, info)


def test_splits_reject_examples_of_the_wrong_shape():
    info = DatasetInfo("toy", "classification", (3,), 2)
    ds = Dataset(np.zeros((2, 2), np.float32), np.zeros(2, np.int32))
    with pytest.raises(ValueError, match=r"shape \(3,\)"):
        Splits(ds, ds, ds, info)


def test_unknown_dataset_name_lists_the_valid_names():
    with pytest.raises(ValueError, match="mnist1d, digits, mnist5k, pydoc_text"):
        load("cifar-11")


def test_unknown_option_lists_the_valid_options():
    with pytest.raises(ValueError, match="val_fraction"):
        load("digits", seq_len=3)


def test_negative_seed_is_rejected():
    with pytest.raises(ValueError, match="non-negative"):
        load("digits", seed=-1)
