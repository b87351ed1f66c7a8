"""The streaming and input-pipeline benchmarks kept working at a small size (they time nothing
here: the figures come from full runs, docs/speed.md)."""

import json
import os

import pytest

from benchmarks import input_pipeline
from benchmarks import streaming as bench


def test_the_streaming_benchmark_trains_on_a_written_pack_and_reports_its_memory(tmp_path):
    argv = ["--dir", str(tmp_path), "--gb", "0.005", "--models", "mlp", "--steps", "4",
            "--rounds", "1", "--json", str(tmp_path / "r.json")]  # fmt: skip
    report = bench.main(argv)
    run = report["runs"]["mlp"]
    assert run["rc"] == 0, run["tail"]
    assert 50 * 2**20 < run["peak"]["RssAnon"] < run["peak"]["VmRSS"]
    assert report["pack"]["train_rows"] == 8192  # one chunk at the least
    share = report["input"]["mlp"]
    assert share["step_ms"] > 0 and share["fed_ms"] > 0
    assert json.loads((tmp_path / "r.json").read_text())["runs"]["mlp"]["rc"] == 0
    assert not (tmp_path / "pack").exists(), "the pack is removed without --keep"


def test_peak_memory_sees_a_process_that_allocates(tmp_path):
    code = "import numpy as np, time; a = np.ones(300 * 2**20 // 8); time.sleep(0.3)"
    got = bench.peak_memory(["python3", "-c", code], env=dict(os.environ))
    assert got["rc"] == 0
    assert got["peak"]["RssAnon"] > 290 * 2**20


@pytest.mark.parametrize("model", ["mlp"])
def test_the_input_pipeline_benchmark_runs(model):
    (r,) = input_pipeline.main(["--models", model, "--repeats", "1"])
    assert r["model"] == model and r["step_ms"] > 0 and r["host_ms"] > 0
