"""Tests for ``jaxnn bench`` (jaxnn/bench.py) and its twins.

The quick run must complete and write well-formed JSON; speed is never asserted. The twins must
be the jaxnn models: the hand-written JAX forward pass and the PyTorch twins give the jaxnn logits
from the same weights (PyTorch tests skip without PyTorch).
"""

import json

import numpy as np
import pytest

from benchmarks import bench
from jaxnn import models
from jaxnn.errors import UserError

RNG = np.random.default_rng(0)


def _quick_args(tmp_path, only, columns="jaxnn,jax,flax,torch"):
    argv = ["--quick", "--only", only, "--columns", columns]
    return bench.build_parser().parse_args([*argv, "--json", str(tmp_path / "bench.json")])


def _check_report(saved: dict, names: list[str]) -> None:
    assert saved["quick"] is True and saved["environment"]["matmul_peak_gflops"] > 0
    assert list(saved["workloads"]) == names
    for rec in saved["workloads"].values():
        assert rec["columns"]["jaxnn"]["status"] == rec["columns"]["jax"]["status"] == "ok"
        for col in rec["columns"].values():
            assert col["status"] in ("ok", "not installed")
            if col["status"] == "ok":
                assert col["min_ms"] <= col["median_ms"] <= col["max_ms"]
                assert len(col["rounds_ms"]) == saved["method"]["rounds"]
                assert col["per_second"] > 0 and col["first_step_s"] > 0 and col["setup_s"] > 0
        assert set(rec["ratios"]) == {
            f"jaxnn_vs_{c}" for c, v in rec["columns"].items() if c != "jaxnn" and "median_ms" in v
        }


def test_quick_run_writes_well_formed_json_and_prints_a_table_row(tmp_path, capsys):
    args = _quick_args(tmp_path, "mlp_b128", columns="jaxnn,jax,torch")
    assert bench.run(args) == 0
    printed = capsys.readouterr().out
    assert "| mlp_b128 |" in printed
    saved = json.loads((tmp_path / "bench.json").read_text())
    _check_report(saved, ["mlp_b128"])
    torch_col = saved["workloads"]["mlp_b128"]["columns"]["torch"]
    if torch_col["status"] == "ok":
        assert saved["environment"]["torch_threads"] == saved["environment"]["cpu_count"]


@pytest.mark.slow
def test_quick_run_of_every_workload_writes_well_formed_json(tmp_path):
    args = _quick_args(tmp_path, ",".join(bench.WORKLOADS))
    assert bench.run(args) == 0
    _check_report(json.loads((tmp_path / "bench.json").read_text()), list(bench.WORKLOADS))


def test_an_unknown_workload_is_a_user_error_naming_it(tmp_path):
    with pytest.raises(UserError, match="resnet"):
        bench.bench(_quick_args(tmp_path, "mlp_b128,resnet"))


def _model(name: str, quick: bool = True) -> tuple:
    work = bench.WORKLOADS[name]
    cfg = bench._config(work, quick)
    return work, cfg, models.build(work.model, cfg)


def test_the_table_columns_agree_and_say_what_is_not_installed():
    ms = [2.0, 2.5, 3.0]
    jaxnn_row = {"status": "ok", "setup_s": 0.1, "first_step_s": 0.2, "flops": 1e6,
                 **bench._summary(ms, 128, 1e6, 100.0)}  # fmt: skip
    report = {
        "columns": ["jaxnn", "torch"],
        "workloads": {
            "mlp_b128": {
                "units": "examples",
                "units_per_step": 128,
                "ratios": {},
                "columns": {
                    "jaxnn": jaxnn_row,
                    "torch": {
                        "status": "not installed",
                        "reason": "torch is not installed (No module named 'torch')",
                    },
                },
            }  # fmt: skip
        },
    }
    table = bench.markdown_table(report)
    row = next(line for line in table.splitlines() if line.startswith("| mlp_b128"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[1] == "128 examples" and cells[2].startswith("2.5 ")
    assert cells[3] == "not installed" and cells[4] == "n/a"
    assert cells[5] == f"{128 / 2.5e-3:,.0f} examples"  # per step / median ms: they agree
    assert cells[6] == "0.4%"  # 1e6 FLOPs in 2.5 ms = 0.4 GFLOP/s of 100: never a bare 0%
    assert "torch: torch is not installed" in table and "install it" in table


def test_an_unavailable_torch_compile_column_says_why_and_its_compile_time_has_a_column():
    jaxnn_row = {"status": "ok", "setup_s": 0.1, "first_step_s": 0.2, "flops": None,
                 **bench._summary([2.0], 128, None, None)}  # fmt: skip
    compiled = {"status": "unavailable", "reason": "torch.compile failed at its first step (X)"}
    report = {
        "columns": ["jaxnn", "torch_compile"],
        "workloads": {"mlp_b128": {
            "units": "examples", "units_per_step": 128, "ratios": {},
            "columns": {"jaxnn": jaxnn_row, "torch_compile": compiled},
        }},
    }  # fmt: skip
    table = bench.markdown_table(report)
    head, _, row = table.splitlines()[:3]
    assert head.rstrip(" |").endswith("torch.compile first step s")
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[3] == "unavailable" and cells[-1] == "n/a"
    assert "torch_compile: torch.compile failed at its first step (X)" in table
    assert "install it" not in table


@pytest.mark.slow
def test_the_torch_compile_column_times_a_compiled_twin_with_its_compile_apart(tmp_path):
    pytest.importorskip("torch")
    args = _quick_args(tmp_path, "mlp_b128", columns="jaxnn,torch,torch_compile")
    rec = bench.bench(args)["workloads"]["mlp_b128"]["columns"]["torch_compile"]
    assert rec["status"] in ("ok", "unavailable"), rec
    if rec["status"] == "ok":  # the compile is its first step, far longer than a step
        assert rec["first_step_s"] > 10 * rec["median_ms"] / 1e3
