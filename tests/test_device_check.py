"""The accelerator check keeps working: its FLOP count, its stages, and its short CPU mode."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import device_check

ROOT = Path(__file__).resolve().parents[1]


def test_the_flop_count_is_six_n_tokens_plus_the_attention_term():
    cfg = {"max_len": 8, "num_layers": 2, "dim": 4}
    tokens = 3 * 8
    assert (
        device_check.gpt_flops(cfg, params=100, batch=3)
        == 6 * 100 * tokens + 12 * 2 * 4 * 8 * tokens
    )


def test_the_gpt_stage_times_a_finite_bf16_step_and_reports_its_mfu():
    row = device_check.stage_gpt(cpu=True, peak_tflops=1.0, steps=2)
    assert row["ok"] and row["config"]["dtype"] == "bfloat16"
    assert row["mfu"] == pytest.approx(row["flops_per_step"] / (row["step_ms"] / 1e3) / 1e12)


def test_an_unknown_stage_is_refused():
    with pytest.raises(SystemExit, match="--skip"):
        device_check.main(["--cpu", "--skip", "nothing"])


@pytest.mark.slow
def test_the_short_cpu_mode_of_the_script_passes(tmp_path):
    env = {**os.environ, "PYTHON": sys.executable}
    report = tmp_path / "report.json"
    done = subprocess.run(
        [str(ROOT / "scripts" / "device_check.sh"), "--cpu", "--json", str(report)],
        env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    assert "all stages ok" in done.stdout and report.exists()
