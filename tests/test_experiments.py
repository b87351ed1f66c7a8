"""Each experiment of ``experiments/`` runs with ``--quick`` and asserts its book claim.

An experiment is a script that measures one claim of the book, draws it, and exits non-zero when
the claim fails; ``metrics.json`` records the claim, every assertion and whether it held.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from experiments.page import svg_geometry
from experiments.style import MAX_PANEL_IN, MIN_FONT_PT

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENTS = sorted(p.name for p in (ROOT / "experiments").glob("ch[0-9][0-9]_*.py"))


def run_experiment(name: str, out: Path, *extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [
            sys.executable,
            "-m",
            f"experiments.{name.removesuffix('.py')}",
            "--out",
            str(out),
            *extra,
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


# The quick runs that cost more than about 12 s of CPU each run under the slow mark (CI runs
# them too, after the default suite: .ci/run); the rest run in the default suite.
SLOW_QUICK = {
    "ch01_function_approximation.py",
    "ch01_one_framework_many_tasks.py",
    "ch03_no_single_best_activation.py",
    "ch06_learning_rate_noise_saddles.py",
    "ch08_adam_needs_little_tuning.py",
    "ch08_optimizers_train_vs_validation.py",
    "ch09_preprocessing.py",
    "ch10_embeddings_for_categories.py",
    "ch10_mlp_images_vs_tables.py",
    "ch11_cnn_vs_mlp.py",
    "ch11_filter_hierarchy.py",
    "ch12_gru_vs_transformer.py",
    "ch13_early_stopping.py",
    "ch13_regularization_curves.py",
    "ch14_failure_modes.py",
    "ch14_remedies.py",
    "ch14_shortcut_fails_in_deployment.py",
    "ch15_end_to_end.py",
}
QUICK = [pytest.param(n, marks=pytest.mark.slow) if n in SLOW_QUICK else n for n in EXPERIMENTS]


def test_every_chapter_of_the_book_has_an_experiment():
    chapters = {int(name[2:4]) for name in EXPERIMENTS}
    assert chapters == set(range(1, 16))
    assert SLOW_QUICK <= set(EXPERIMENTS)


@pytest.mark.parametrize("name", QUICK)
def test_quick_run_holds_the_claim_and_draws_a_figure(name, tmp_path):
    out = tmp_path / name.removesuffix(".py")
    proc = run_experiment(name, out, "--quick")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    doc = json.loads((out / "metrics.json").read_text())
    assert doc["claim_held"] is True
    assert doc["quick"] is True
    assert doc["checks"] and all(c["held"] for c in doc["checks"])
    assert doc["claim"].startswith("Chapter ")
    figures = doc["metrics"]["figures"]
    assert figures
    for fig in figures:
        png = out / fig
        assert png.stat().st_size > 1000
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [f["png"] for f in doc["figure_docs"]] == figures
    for fig in doc["figure_docs"]:
        assert fig["caption"].strip() and len(fig["alt"]) == len(fig["svgs"])
    frames = [f for s in doc["sliders"] for f in s["frames"]]
    for svg in doc["figures_svg"] + frames:  # what the page shows: readable at 10 px on a phone
        width, smallest = svg_geometry((out / svg).read_bytes())
        assert smallest >= MIN_FONT_PT and width <= MAX_PANEL_IN * 72, svg


def test_failed_check_exits_nonzero_and_records_the_claim_as_not_held(tmp_path):
    script = tmp_path / "failing.py"
    script.write_text(
        "from experiments.harness import Experiment\n"
        "exp = Experiment('failing', 'Chapter 0: one is two')\n"
        "exp.record(one=1.0)\n"
        "exp.check(1.0 == 2.0, 'one equals two')\n"
        "exp.finish()\n"
    )
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, str(script), "--out", str(out)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1
    doc = json.loads((out / "metrics.json").read_text())
    assert doc["claim_held"] is False
    assert doc["checks"] == [{"assertion": "one equals two", "held": False}]
    assert doc["metrics"] == {"one": 1.0}


@pytest.mark.slow
@pytest.mark.parametrize("name", EXPERIMENTS)
def test_full_run_holds_the_claim(name, tmp_path):
    out = tmp_path / name.removesuffix(".py")
    proc = run_experiment(name, out)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert json.loads((out / "metrics.json").read_text())["claim_held"] is True
