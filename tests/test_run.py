"""Run directories are read as untrusted input; the data info round-trips through JSON."""

import json

import pytest

from jaxnn.data import DatasetInfo, load, pipeline
from jaxnn.errors import UserError
from jaxnn.train import run


def test_info_round_trips_with_tokenizer_and_normalization():
    splits, _ = pipeline.standardize(load("pydoc_text", seq_len=16))
    info = splits.info
    back = run.info_from_json(json.loads(json.dumps(run.info_to_json(info))))
    assert (back.task, back.input_shape, back.num_classes) == (info.task, (16,), info.num_classes)
    text = "def f(x):\n    return x"
    assert list(back.tokenizer.encode(text)) == list(info.tokenizer.encode(text))
    assert json.dumps(back.normalization) == json.dumps(run.info_to_json(info)["normalization"])


def test_info_from_json_refuses_a_bad_task_naming_the_file():
    value = run.info_to_json(DatasetInfo("t", "classification", (2,), 2))
    with pytest.raises(UserError, match="data_info.json: expected a data info written by jaxnn"):
        run.info_from_json({**value, "task": "ranking"})


def test_read_config_names_the_missing_field(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model": "mlp", "dataset": "x", "fit": {}}))
    with pytest.raises(UserError, match="expected field 'model_config' of type dict, got nothing"):
        run.read_config(tmp_path)


def test_read_json_refuses_a_symbolic_link(tmp_path):
    (tmp_path / "real.json").write_text("{}")
    (tmp_path / "config.json").symlink_to(tmp_path / "real.json")
    with pytest.raises(UserError, match="it is a symbolic link"):
        run.read_config(tmp_path)
