"""``jaxnn book``: the chapter map, and ``book build``, the executed book as one offline page.

The build tests run a small experiments package written here (one passing claim, one broken
claim, one crash), so they take seconds; the browser test renders a page of real quick
experiments in headless Chromium and skips when no Chromium is installed.
"""

from __future__ import annotations

import importlib
import os
import re
import shutil
import subprocess
import sys
import time

import pytest

from jaxnn import book

PASSES = """
from jaxnn.experiments._common import Experiment, plt

exp = Experiment("ch03_passes", "Chapter 3: one equals one")
fig, ax = plt.subplots(figsize=(3, 2))
ax.plot([0, 1], [0, 1])
exp.save(fig, "line.png")
exp.record(one=1.0)
exp.check(1.0 == 1.0, "one equals one")
exp.finish()
"""

BREAKS = """
from jaxnn.experiments._common import Experiment

exp = Experiment("ch09_breaks", "Chapter 9: one equals two")
exp.record(one=1.0)
exp.check(1.0 == 2.0, "one equals two")
exp.finish()
"""

CRASHES = 'raise RuntimeError("the experiment crashed before any check")\n'


@pytest.fixture
def package(tmp_path, monkeypatch):
    """A throwaway experiments package on ``sys.path`` (and on the children's PYTHONPATH)."""
    root = tmp_path / "pkgroot"
    name = f"book_{tmp_path.name.replace('-', '_')}"
    pkg = root / name
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "ch03_passes.py").write_text(PASSES)
    (pkg / "ch09_breaks.py").write_text(BREAKS)
    (pkg / "ch10_crashes.py").write_text(CRASHES)
    (pkg / "helper.py").write_text("")  # not chNN_*: not an experiment
    monkeypatch.syspath_prepend(str(root))
    path = os.pathsep.join(p for p in (str(root), os.environ.get("PYTHONPATH")) if p)
    monkeypatch.setenv("PYTHONPATH", path)
    importlib.invalidate_caches()
    return name, pkg


def _build(out, *extra):
    return book.main(["build", "--out", str(out), "--quick", *extra])


def _articles(page: str) -> dict:
    return dict(re.findall(r'<article class="\w+" id="(\w+)" data-status="([\w ]+)"', page))


def test_book_without_a_subcommand_prints_the_fifteen_chapters(capsys):
    assert book.main([]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 15
    assert lines[6].startswith(" 7. Backpropagation")


def test_discover_finds_the_shipped_experiments_through_the_package():
    names = book.discover()
    assert "ch03_linear_collapse" in names and "ch11_cnn_vs_mlp" in names
    assert names == sorted(names, key=lambda n: (book.chapter_of(n), n))
    assert "_common" not in names


def test_a_broken_claim_and_a_crash_exit_nonzero_and_are_marked_failed(package, tmp_path, capsys):
    name, _ = package
    out = tmp_path / "site"
    assert _build(out, "--package", name) == 1
    err = capsys.readouterr().err
    assert "failed: ch09_breaks, ch10_crashes" in err
    page = (out / "index.html").read_text()
    assert _articles(page) == {
        "ch03_passes": "passed",
        "ch09_breaks": "failed",
        "ch10_crashes": "failed",
    }
    assert "the experiment crashed before any check" in page  # the crash's output is shown
    assert page.count('<section class="chapter"') == 15
    assert page.count('class="badge missing"') == 12  # every chapter but 3, 9 and 10
    assert 'src="data:image/png;base64,' in page
    assert not re.search(r'(src|href)="(https?:)?//', page)  # nothing fetched from elsewhere


def test_a_rebuild_reuses_unchanged_passing_experiments_and_reruns_edited_ones(
    package, tmp_path, capsys
):
    name, pkg = package
    out = tmp_path / "site"
    _build(out, "--package", name, "--only", "ch03")
    first = (out / "ch03_passes" / "run.json").read_text()
    capsys.readouterr()
    assert _build(out, "--package", name, "--only", "ch03") == 0
    assert "ch03_passes: cached" in capsys.readouterr().out
    assert (out / "ch03_passes" / "run.json").read_text() == first
    (pkg / "ch03_passes.py").write_text(PASSES + "# edited\n")
    assert _build(out, "--package", name, "--only", "ch03") == 0
    assert "ch03_passes: passed" in capsys.readouterr().out
    assert (out / "ch03_passes" / "run.json").read_text() != first


def test_results_of_experiments_outside_only_stay_on_the_page(package, tmp_path):
    name, pkg = package
    out = tmp_path / "site"
    _build(out, "--package", name, "--only", "ch03")
    assert _build(out, "--package", name, "--only", "ch09") == 1
    articles = _articles((out / "index.html").read_text())
    assert articles["ch03_passes"] == "passed" and articles["ch10_crashes"] == "not built"
    (pkg / "ch03_passes.py").write_text(PASSES + "# edited\n")
    _build(out, "--package", name, "--only", "ch09")
    assert _articles((out / "index.html").read_text())["ch03_passes"] == "stale"


def test_only_with_an_unknown_name_is_refused_with_the_valid_names(package, tmp_path, capsys):
    name, _ = package
    assert _build(tmp_path / "site", "--package", name, "--only", "ch99") == 2
    err = capsys.readouterr().err
    assert "ch99" in err and "ch03_passes" in err


def test_an_experiment_past_its_timeout_is_killed_and_marked_failed(package, tmp_path):
    name, pkg = package
    (pkg / "ch05_hangs.py").write_text(
        "import subprocess, sys, time\n"
        "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        "time.sleep(60)\n"
    )  # a child of its own too: the timeout must end both, or the build would wait 60 s
    out = tmp_path / "site"
    t0 = time.monotonic()
    assert _build(out, "--package", name, "--only", "ch05", "--timeout", "1") == 1
    assert time.monotonic() - t0 < 30
    assert _articles((out / "index.html").read_text())["ch05_hangs"] == "failed"
    assert (
        "still running after the --timeout of 1 s" in (out / "ch05_hangs" / "log.txt").read_text()
    )


def test_the_cache_key_changes_with_the_experiment_the_shared_modules_and_the_mode(package):
    name, pkg = package
    (pkg / "_style.py").write_text("STYLE = 1\n")
    key = book.cache_key(name, "ch03_passes", quick=True)
    assert book.cache_key(name, "ch03_passes", quick=True) == key
    assert book.cache_key(name, "ch03_passes", quick=False) != key
    assert book.cache_key(name, "ch09_breaks", quick=True) != key
    (pkg / "_style.py").write_text("STYLE = 2\n")
    assert book.cache_key(name, "ch03_passes", quick=True) != key


def test_a_link_in_place_of_a_results_directory_is_refused_and_left_alone(package, tmp_path):
    name, _ = package
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "keep.txt").write_text("not the build's")
    out = tmp_path / "site"
    out.mkdir()
    (out / "ch03_passes").symlink_to(elsewhere, target_is_directory=True)
    assert _build(out, "--package", name, "--only", "ch03") == 2
    assert (elsewhere / "keep.txt").read_text() == "not the build's"


def _chromium() -> str | None:
    for exe in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(exe):
            return shutil.which(exe)
    return None


def _render(page) -> tuple[dict, str]:
    """Load ``page`` in headless Chromium; the page's own script reports what rendered."""
    dom = subprocess.run(
        [
            _chromium(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--virtual-time-budget=5000",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    body = re.search(r"<body([^>]*)>", dom)
    assert body, dom[-2000:]
    return dict(re.findall(r'data-([\w-]+)="([^"]*)"', body.group(1))), dom


def _assert_every_chapter_and_figure_rendered(page) -> None:
    attrs, dom = _render(page)
    assert attrs["rendered"] == "yes"
    assert attrs["sections"] == "15"
    assert int(attrs["images"]) >= 1
    assert attrs["images-loaded"] == attrs["images"]
    for chapter in range(1, 16):
        assert f'id="chapter-{chapter}"' in dom


needs_chromium = pytest.mark.skipif(
    _chromium() is None, reason="no Chromium installed (apt-get install chromium)"
)


@needs_chromium
def test_the_page_renders_in_chromium_with_every_chapter_and_every_figure(package, tmp_path):
    name, _ = package
    out = tmp_path / "site"
    _build(out, "--package", name)
    _assert_every_chapter_and_figure_rendered(out / "index.html")


@needs_chromium
@pytest.mark.slow
def test_the_page_of_real_quick_experiments_renders_in_chromium(tmp_path):
    out = tmp_path / "site"
    assert _build(out, "--only", "ch03,ch11_translation") == 0
    _assert_every_chapter_and_figure_rendered(out / "index.html")


def test_python_dash_m_jaxnn_book_build_runs_in_a_subprocess(package, tmp_path):
    name, _ = package
    done = subprocess.run(
        [sys.executable, "-m", "jaxnn.book", "build", "--out", str(tmp_path / "s")]
        + ["--quick", "--package", name, "--only", "ch03"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "[1/1] ch03_passes: passed" in done.stdout
