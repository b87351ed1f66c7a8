"""Tests for jaxnn.data.tfds: TFDS datasets through ``data_source``, offline, never downloading."""

import numpy as np
import pytest

from jaxnn.data import load

tfds = pytest.importorskip("tensorflow_datasets")

GRAD_CASES = {}  # a data loader: nothing is differentiable


def test_mock_mnist_loads_as_float_images_with_stratified_val_and_sealed_test():
    with tfds.testing.mock_data(num_examples=40):
        splits = load("tfds:mnist", seed=0)
    assert splits.info.input_shape == (28, 28, 1) and splits.info.num_classes == 10
    assert splits.info.modality == "image" and splits.info.class_names[3] == "3"
    assert (len(splits.train), len(splits.val), len(splits.test)) == (36, 4, 40)
    assert splits.train.x.dtype == np.float32 and splits.train.y.dtype == np.int32
    assert 0.0 <= splits.train.x.min() and splits.train.x.max() <= 1.0
    assert splits.test.unseal_count == 0


def test_mock_mnist_is_deterministic_by_seed():
    with tfds.testing.mock_data(num_examples=40):
        a, b = load("tfds:mnist", seed=3), load("tfds:mnist", seed=3)
    assert np.array_equal(a.train.x, b.train.x) and np.array_equal(a.val.y, b.val.y)


def test_max_examples_caps_each_split():
    with tfds.testing.mock_data(num_examples=40):
        splits = load("tfds:mnist", seed=0, max_examples=20)
    assert len(splits.train) + len(splits.val) == 20 and len(splits.test) == 20


def test_unprepared_dataset_says_how_to_prepare_it_instead_of_downloading(tmp_path):
    with pytest.raises(ValueError, match="tfds build mnist --file_format=array_record"):
        load("tfds:mnist", data_dir=str(tmp_path))
    assert not any(tmp_path.rglob("*.array_record*"))  # nothing was fetched


def test_without_tensorflow_the_error_says_what_works_in_this_install(tmp_path, monkeypatch):
    from jaxnn.data import tfds as jaxnn_tfds

    monkeypatch.setattr(jaxnn_tfds, "_tensorflow_installed", lambda: False)
    with pytest.raises(ValueError) as err:
        load("tfds:mnist", data_dir=str(tmp_path))
    message = str(err.value)
    assert "has no TensorFlow" in message and "pip install tensorflow" in message
    assert "reading it needs no TensorFlow" in message
    monkeypatch.setattr(jaxnn_tfds, "_tensorflow_installed", lambda: True)
    with pytest.raises(ValueError, match="prepare it once with network access"):
        load("tfds:mnist", data_dir=str(tmp_path))


def test_unknown_tfds_name_is_a_value_error():
    with pytest.raises(ValueError, match="no_such_dataset_xyz"):
        load("tfds:no_such_dataset_xyz")


def test_a_streamed_tfds_split_reads_the_arrays_of_the_loaded_one_batch_by_batch():
    from jaxnn.data import streaming

    with tfds.testing.mock_data(num_examples=40):
        whole = load("tfds:mnist", seed=0)
        streamed = load("tfds:mnist", seed=0, stream=True)
    assert streaming.is_lazy(streamed.train.x) and not streaming.is_lazy(whole.train.x)
    assert streamed.train.x.shape == whole.train.x.shape and streamed.train.x.dtype == np.float32
    np.testing.assert_array_equal(streamed.train.x[[3, 0, 35]], whole.train.x[[3, 0, 35]])
    np.testing.assert_array_equal(streamed.val.y, whole.val.y)
    np.testing.assert_array_equal(np.asarray(streamed.test.unseal().x), whole.test.unseal().x)
    assert streamed.info.input_shape == whole.info.input_shape


def test_stream_must_be_a_boolean():
    with pytest.raises(ValueError, match="stream to be True or False"):
        load("tfds:mnist", stream="yes")
