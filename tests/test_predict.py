"""jaxnn.app.predict: rebuilding a finished run and formatting its predictions."""

import json

import numpy as np
import pytest

from jaxnn.app import predict
from jaxnn.errors import UserError


def test_load_run_of_a_folder_that_is_not_a_run_is_one_clear_error(tmp_path):
    with pytest.raises(UserError, match="config.json: expected the run's config as a regular file"):
        predict.load_run(tmp_path)
    with pytest.raises(UserError, match="expected a run directory"):
        predict.load_run(tmp_path / "nope")


def test_format_rows_writes_csv_and_json_lines():
    rows = [{"id": 0, "prediction": "a", "p_a": 0.9}, {"id": 1, "prediction": "b", "p_a": 0.1}]
    assert predict.format_rows(rows, "csv").splitlines() == [
        "id,prediction,p_a",
        "0,a,0.9",
        "1,b,0.1",
    ]
    assert [json.loads(line) for line in predict.format_rows(rows, "jsonl").splitlines()] == rows
    assert np.isfinite([r["p_a"] for r in rows]).all()
