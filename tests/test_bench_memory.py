"""Tests for ``benchmarks/memory.py``: its ``--quick`` run writes well-formed JSON and prints the
table. Memory and speed are not asserted here (the model tests assert remat's memory saving)."""

import json
import math

import pytest


def _script():
    from benchmarks import memory

    return memory


def _check_report(saved: dict, names: list[str]) -> None:
    assert saved["quick"] is True and saved["backend"] and saved["jax"]
    assert list(saved["workloads"]) == names
    for rec in saved["workloads"].values():
        modes = rec["modes"]
        assert list(modes)[:2] == ["none", "remat"]
        for row in modes.values():
            assert row["step_ms"] > 0 and len(row["rounds_ms"]) == saved["method"]["rounds"]
            if row["memory"] is not None:
                assert set(row["memory"]) >= {"temp_bytes", "argument_bytes", "output_bytes"}
                assert all(isinstance(v, int) and v >= 0 for v in row["memory"].values())
        ratios = rec["ratios"]
        assert {f"{m}_time" for m in modes if m != "none"} <= set(ratios)
        assert all(math.isfinite(v) and v > 0 for v in ratios.values())


def test_quick_run_writes_well_formed_json_and_prints_the_table(tmp_path, capsys):
    out = tmp_path / "memory.json"
    assert _script().main(["--quick", "--only", "mlp_16x512", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "| workload | mode | temp MiB |" in printed and "| mlp_16x512 | remat |" in printed
    _check_report(json.loads(out.read_text()), ["mlp_16x512"])


def test_an_unknown_workload_is_refused():
    with pytest.raises(SystemExit):
        _script().main(["--quick", "--only", "resnet"])


@pytest.mark.slow
def test_quick_run_of_every_workload_writes_well_formed_json(tmp_path):
    module, out = _script(), tmp_path / "memory.json"
    assert module.main(["--quick", "--json", str(out)]) == 0
    saved = json.loads(out.read_text())
    _check_report(saved, list(module.WORKLOADS))
    assert list(saved["workloads"]["transformer_l2"]["modes"]) == ["none", "remat", "ckpt_unrolled"]
