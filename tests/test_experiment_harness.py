"""The experiment harness: the quick banner, SVG twins, run facts and the --break-claim flag."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = (
    "from experiments.harness import Experiment, plt\n"
    "exp = Experiment('toy', 'Chapter 0: two is two')\n"
    "exp.record(two=2.0)\n"
    "fig, ax = plt.subplots()\n"
    "ax.plot([0, 1], [0, 1])\n"
    "exp.save(fig, 'line.png')\n"
    "exp.check(2.0 == 2.0, 'two equals two')\n"
    "exp.check(3.0 == 3.0, 'three equals three')\n"
    "exp.finish()\n"
)


def run_toy(tmp_path, *flags):
    tmp_path.mkdir(parents=True, exist_ok=True)
    script = tmp_path / "toy.py"
    script.write_text(SCRIPT)
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, str(script), "--out", str(out), *flags],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    return proc, json.loads((out / "metrics.json").read_text()), out


def test_break_claim_fails_the_first_check_and_exits_nonzero(tmp_path):
    proc, doc, _ = run_toy(tmp_path, "--break-claim")
    assert proc.returncode == 1
    assert doc["claim_held"] is False
    assert len(doc["checks"]) == 1
    assert doc["checks"][0]["held"] is False
    assert "--break-claim" in doc["checks"][0]["assertion"]


def test_a_normal_run_records_time_machine_command_and_an_svg_twin(tmp_path):
    proc, doc, out = run_toy(tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert doc["claim_held"] is True
    assert [c["held"] for c in doc["checks"]] == [True, True]
    assert doc["metrics"]["figures"] == ["line.png"]
    assert doc["figures_svg"] == ["line.svg"]
    assert (out / "line.svg").read_text().lstrip().startswith("<?xml")
    assert doc["seconds"] >= 0
    assert doc["machine"]["cpu_count"] >= 1
    assert doc["command"] == "python -m experiments.toy"


def test_quick_figures_carry_the_quick_banner(tmp_path):
    proc, doc, out = run_toy(tmp_path, "--quick")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert doc["quick"] is True
    assert doc["command"].endswith("--quick")
    assert "QUICK RUN" in (out / "line.svg").read_text()
    _, _, full_out = run_toy(tmp_path / "full")
    assert "QUICK RUN" not in (full_out / "line.svg").read_text()
