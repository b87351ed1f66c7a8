"""The experiment harness: panels and captions, the figure checks, sliders, the quick banner, run
facts and the --break-claim flag."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from experiments.harness import FigureError, check_figure, plt
from experiments.style import panels, plain_log_ticks, show_image

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = (
    "from experiments.harness import Experiment, plt\n"
    "from experiments.style import panels\n"
    "exp = Experiment('toy', 'Chapter 0: two is two')\n"
    "exp.record(two=2.0)\n"
    "fig, ax = plt.subplots()\n"
    "ax.plot([0, 1], [0, 1])\n"
    "exp.save(fig, 'line.png', caption='One line, rising.', alt='A line from 0 to 1.')\n"
    "figs, axes = panels(2)\n"
    "for a in axes:\n"
    "    a.plot([0, 1], [1, 0])\n"
    "exp.save(figs, 'two.png', caption='Two lines.', alt=['The first.', 'The second.'])\n"
    "frames, axes = panels(3)\n"
    "for k, a in enumerate(axes):\n"
    "    a.plot([0, 1], [0, k])\n"
    "exp.slider('k', 'slope', [0, 1, 2], frames, caption='Slopes.', alt=['0', '1', '2'],\n"
    "           initial=1)\n"
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
    assert (out / "metrics.json").exists(), proc.stderr[-2000:]
    return proc, json.loads((out / "metrics.json").read_text()), out


def test_break_claim_fails_the_first_check_and_exits_nonzero(tmp_path):
    proc, doc, _ = run_toy(tmp_path, "--break-claim")
    assert proc.returncode == 1
    assert doc["claim_held"] is False
    assert len(doc["checks"]) == 1
    assert doc["checks"][0]["held"] is False
    assert "--break-claim" in doc["checks"][0]["assertion"]


def test_a_normal_run_records_time_machine_command_figures_and_sliders(tmp_path):
    proc, doc, out = run_toy(tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert doc["claim_held"] is True
    assert [c["held"] for c in doc["checks"]] == [True, True]
    assert doc["metrics"]["figures"] == ["line.png", "two.png"]
    assert doc["figures_svg"] == ["line.svg", "two-1.svg", "two-2.svg"]
    assert doc["figure_docs"][1] == {
        "png": "two.png",
        "svgs": ["two-1.svg", "two-2.svg"],
        "caption": "Two lines.",
        "alt": ["The first.", "The second."],
    }
    assert (out / "line.svg").read_text().lstrip().startswith("<?xml")
    one = Image.open(out / "line.png")
    both = Image.open(out / "two.png")
    assert both.width > 1.9 * one.width  # the two panels side by side
    (slider,) = doc["sliders"]
    assert slider["frames"] == ["k-frame-0.svg", "k-frame-1.svg", "k-frame-2.svg"]
    assert slider["values"] == ["0", "1", "2"] and slider["initial"] == 1
    assert all((out / f).is_file() for f in slider["frames"])
    assert doc["seconds"] >= 0
    assert doc["machine"]["cpu_count"] >= 1
    assert doc["command"] == "python -m experiments.toy"


def test_quick_figures_carry_the_quick_banner(tmp_path):
    proc, doc, out = run_toy(tmp_path, "--quick")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert doc["quick"] is True
    assert doc["command"].endswith("--quick")
    for svg in [*doc["figures_svg"], *doc["sliders"][0]["frames"]]:
        assert "QUICK RUN" in (out / svg).read_text()
    _, _, full_out = run_toy(tmp_path / "full")
    assert "QUICK RUN" not in (full_out / "line.svg").read_text()


def test_a_figure_with_text_under_ten_points_is_refused():
    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1], label="tiny")
    ax.legend(fontsize=7)
    with pytest.raises(FigureError, match="7 pt"):
        check_figure(fig)
    plt.close(fig)


def test_a_legend_entry_whose_curve_is_not_drawn_is_refused():
    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1], label="drawn")
    ax.plot([], [], label="diverged")
    ax.legend()
    with pytest.raises(FigureError, match="diverged"):
        check_figure(fig)
    ax.lines[1].set_data([0.5], [0.5])
    check_figure(fig)  # now drawn
    ax.lines[1].set_data([5.0], [5.0])
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    with pytest.raises(FigureError, match="diverged"):
        check_figure(fig)  # drawn, but out of view
    plt.close(fig)


def test_a_grid_over_an_image_is_refused_and_show_image_draws_none():
    figs, (ax, bx) = panels(2)
    ax.imshow(np.eye(4))
    with pytest.raises(FigureError, match="grid over an image"):
        check_figure(figs[0])
    show_image(bx, np.eye(4), title="no grid")
    check_figure(figs[1])
    for fig in figs:
        plt.close(fig)


def test_mathtext_is_refused_and_log_axes_get_plain_tick_labels():
    fig, ax = plt.subplots()
    ax.plot([1e-4, 1e3], [1, 1e6])
    ax.set_title("$x^2$")
    with pytest.raises(FigureError, match="mathtext"):
        check_figure(fig)
    ax.set_title("x\u00b2")
    ax.set_xscale("log")
    ax.set_yscale("log")
    with pytest.raises(FigureError, match="mathtext"):
        check_figure(fig)  # matplotlib's default log ticks are mathtext
    plain_log_ticks(fig)
    check_figure(fig)
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert "10\u2074" in labels and "100" in labels
    plt.close(fig)
