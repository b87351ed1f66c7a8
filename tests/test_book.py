"""``jaxnn book``: the chapter map, and ``book build``, the executed book as one offline page.

The build tests run a small experiments package written here (one passing claim with a figure
and a slider, one broken claim, one crash), so they take seconds. The browser tests render the
page in headless Chromium at a desktop and a phone width, let the page check itself
(``#selftest``: every image loaded, alt texts and captions, no external resource, no figure text
under 10 CSS pixels as drawn, the table of contents, the sliders, the pager) and skip when no
Chromium is installed.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import shutil
import subprocess
import sys
import time

import pytest

from experiments import book, claims, page

PASSES = """
from experiments.harness import Experiment, plt

exp = Experiment("ch03_passes", "Chapter 3: one equals one")
figs = []
for slope in (1, 2):
    fig, ax = plt.subplots(figsize=(4.2, 3.2))
    ax.plot([0, 1], [0, slope], label=f"slope {slope}")
    ax.set_xlabel("x")
    ax.legend()
    figs.append(fig)
exp.save(figs, "lines.png", caption="Two straight lines: the second climbs twice as fast.",
         alt=["A straight line of slope one from 0 to 1.", "A straight line of slope two."])
frames = []
for slope in (1, 2, 3):
    fig, ax = plt.subplots(figsize=(4.2, 3.2))
    ax.plot([0, 1], [0, slope])
    frames.append(fig)
exp.slider("slope", "slope", [1, 2, 3], frames, caption="The line's slope, set by the knob.",
           alt=[f"A straight line of slope {s}, drawn alone." for s in (1, 2, 3)])
exp.record(one=1.0, val_accuracy=0.5, scratch_bytes=2_500_000)
exp.check(1.0 == 1.0, "one equals one")
exp.finish()
"""

BREAKS = """
from experiments.harness import Experiment

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
    (pkg / "_style.py").write_text("STYLE = 0\n")  # shared by every experiment
    monkeypatch.syspath_prepend(str(root))
    path = os.pathsep.join(p for p in (str(root), os.environ.get("PYTHONPATH")) if p)
    monkeypatch.setenv("PYTHONPATH", path)
    importlib.invalidate_caches()
    return name, pkg


def _where(package) -> dict:
    """The fake package as :func:`experiments.book.build` takes it."""
    name, pkg = package
    names = sorted(p.stem for p in pkg.glob("ch[0-9][0-9]_*.py"))
    return {"package": name, "folder": pkg, "names": names, "shared": ("_style",)}


def _build(out, *extra, package=None):
    where = _where(package) if package else {}
    return book.main(["build", "--out", str(out), "--quick", *extra], **where)


def _articles(page: str) -> dict:
    return dict(re.findall(r'<article class="\w+" id="(\w+)" data-status="([\w ]+)"', page))


def test_book_without_a_subcommand_prints_the_fifteen_chapters(capsys):
    assert book.main([]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 15
    assert lines[6].startswith(" 7. Backpropagation")


def test_the_list_of_experiments_is_every_chapter_module_of_the_folder_in_chapter_order():
    files = sorted(p.stem for p in book.FOLDER.glob("ch[0-9][0-9]_*.py"))
    assert list(book.EXPERIMENTS) == files
    assert {book.chapter_of(n) for n in book.EXPERIMENTS} == set(range(1, 16))
    assert all((book.FOLDER / f"{m}.py").is_file() for m in book.SHARED)


def test_a_broken_claim_and_a_crash_exit_nonzero_and_are_marked_failed(package, tmp_path, capsys):
    out = tmp_path / "site"
    assert _build(out, package=package) == 1
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
    assert 'src="data:image/svg+xml;base64,' in page
    assert not re.search(r'(src|href)="(https?:)?//', page)  # nothing fetched from elsewhere
    assert str(tmp_path) not in re.sub(r"<pre>.*?</pre>", "", page, flags=re.S)  # no local path
    assert "<code>python -m book_" in page and "ch03_passes --quick</code>" in page


def test_a_rebuild_reuses_unchanged_passing_experiments_and_reruns_edited_ones(
    package, tmp_path, capsys
):
    _, pkg = package
    out = tmp_path / "site"
    _build(out, "--only", "ch03", package=package)
    first = (out / "ch03_passes" / "run.json").read_text()
    capsys.readouterr()
    assert _build(out, "--only", "ch03", package=package) == 0
    assert "ch03_passes: cached" in capsys.readouterr().out
    assert (out / "ch03_passes" / "run.json").read_text() == first
    (pkg / "ch03_passes.py").write_text(PASSES + "# edited\n")
    assert _build(out, "--only", "ch03", package=package) == 0
    assert "ch03_passes: passed" in capsys.readouterr().out
    assert (out / "ch03_passes" / "run.json").read_text() != first


def test_results_of_experiments_outside_only_stay_on_the_page(package, tmp_path):
    _, pkg = package
    out = tmp_path / "site"
    _build(out, "--only", "ch03", package=package)
    assert _build(out, "--only", "ch09", package=package) == 1
    articles = _articles((out / "index.html").read_text())
    assert articles["ch03_passes"] == "passed" and articles["ch10_crashes"] == "not built"
    (pkg / "ch03_passes.py").write_text(PASSES + "# edited\n")
    _build(out, "--only", "ch09", package=package)
    assert _articles((out / "index.html").read_text())["ch03_passes"] == "stale"


def test_only_with_an_unknown_name_is_refused_with_the_valid_names(package, tmp_path, capsys):
    assert _build(tmp_path / "site", "--only", "ch99", package=package) == 2
    err = capsys.readouterr().err
    assert "ch99" in err and "ch03_passes" in err


def test_an_experiment_past_its_timeout_is_killed_and_marked_failed(package, tmp_path):
    _, pkg = package
    (pkg / "ch05_hangs.py").write_text(
        "import subprocess, sys, time\n"
        "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        "time.sleep(60)\n"
    )  # a child of its own too: the timeout must end both, or the build would wait 60 s
    out = tmp_path / "site"
    t0 = time.monotonic()
    assert _build(out, "--only", "ch05", "--timeout", "1", package=package) == 1
    assert time.monotonic() - t0 < 30
    assert _articles((out / "index.html").read_text())["ch05_hangs"] == "failed"
    assert (
        "still running after the --timeout of 1 s" in (out / "ch05_hangs" / "log.txt").read_text()
    )


def test_the_cache_key_changes_with_the_experiment_the_shared_modules_and_the_mode(package):
    _, pkg = package
    (pkg / "_style.py").write_text("STYLE = 1\n")
    key = book.cache_key(pkg, "ch03_passes", ("_style",), quick=True)
    assert book.cache_key(pkg, "ch03_passes", ("_style",), quick=True) == key
    assert book.cache_key(pkg, "ch03_passes", ("_style",), quick=False) != key
    assert book.cache_key(pkg, "ch09_breaks", ("_style",), quick=True) != key
    (pkg / "_style.py").write_text("STYLE = 2\n")
    assert book.cache_key(pkg, "ch03_passes", ("_style",), quick=True) != key


def test_a_link_in_place_of_a_results_directory_is_refused_and_left_alone(package, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "keep.txt").write_text("not the build's")
    out = tmp_path / "site"
    out.mkdir()
    (out / "ch03_passes").symlink_to(elsewhere, target_is_directory=True)
    assert _build(out, "--only", "ch03", package=package) == 2
    assert (elsewhere / "keep.txt").read_text() == "not the build's"


def _chromium() -> str | None:
    for exe in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(exe):
            return shutil.which(exe)
    return None


DESKTOP, PHONE = (1280, 900), (390, 844)


FRAME = """<!DOCTYPE html><html><body style="margin:0">
<iframe id="page" src="{src}" width="{w}" height="{h}" style="border:0"></iframe>
<script>
function copy() {{
  var doc = document.getElementById("page").contentDocument;
  if (!doc || !doc.body || doc.body.getAttribute("data-rendered") !== "yes") {{
    setTimeout(copy, 50);
    return;
  }}
  Array.prototype.forEach.call(doc.body.attributes, function (a) {{
    document.body.setAttribute(a.name, a.value);
  }});
  document.body.setAttribute("data-frame-dom", "yes");
  document.getElementById("dom").textContent = doc.documentElement.outerHTML.length;
}}
copy();
</script><pre id="dom"></pre></body></html>
"""


def _render(page, size, profile) -> tuple[dict, str]:
    """Load ``page#selftest`` in headless Chromium, in a frame of ``size`` CSS pixels (a
    headless window is at least 500 pixels wide; a frame can be a phone's width); the page
    reports what it found as ``data-*`` attributes of its body, which the frame's parent copies
    to its own body."""
    wrapper = profile.parent / f"frame-{size[0]}.html"
    wrapper.write_text(FRAME.format(src=page.as_uri() + "#selftest", w=size[0], h=size[1]))
    args = [
        _chromium(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--hide-scrollbars",
        "--allow-file-access-from-files",  # the parent reads its frame's document
        f"--user-data-dir={profile}",
        f"--window-size={size[0] + 40},{size[1] + 200}",
        "--virtual-time-budget=20000",
        "--dump-dom",
        wrapper.as_uri(),
    ]
    dom = subprocess.run(args, capture_output=True, text=True, timeout=180).stdout
    body = re.search(r"<body([^>]*)>", dom)
    assert body, dom[-2000:]
    return dict(re.findall(r'data-([\w-]+)="([^"]*)"', body.group(1))), page.read_text()


def _assert_the_page_reads_well(page, size, profile, *, sliders: int) -> None:
    attrs, dom = _render(page, size, profile)
    assert attrs.get("rendered") == "yes", attrs
    assert int(attrs["viewport"]) == size[0]
    assert attrs["sections"] == "15"
    for chapter in range(1, 16):
        assert f'id="chapter-{chapter}"' in dom
    assert int(attrs["images"]) >= 1 and attrs["images-loaded"] == attrs["images"]
    assert attrs["alt-bad"] == "0" and attrs["captions-missing"] == "0"
    assert attrs["external"] == "0"
    assert float(attrs["min-text-px"]) >= 10.0, attrs["min-text-where"]
    assert int(attrs["sliders"]) == sliders and attrs["sliders-ok"] == attrs["sliders"]
    assert attrs["toc-visible"] == "1" and attrs["toc-links"] == "15"
    assert attrs["toc-marks"] == "15" and attrs["toc-broken"] == "0"
    assert attrs["toc-sticky"] == "yes"
    assert attrs["pager-links"] == "28" and attrs["pager-broken"] == "0"
    assert int(attrs["overflow-x"]) <= 0  # nothing wider than the screen


needs_chromium = pytest.mark.skipif(
    _chromium() is None, reason="no Chromium installed (apt-get install chromium)"
)


@needs_chromium
@pytest.mark.parametrize("size", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_the_page_reads_well_in_chromium_at_desktop_and_phone_widths(package, tmp_path, size):
    out = tmp_path / "site"
    _build(out, package=package)
    _assert_the_page_reads_well(out / "index.html", size, tmp_path / "profile", sliders=1)


@needs_chromium
@pytest.mark.slow
def test_the_page_of_real_quick_experiments_reads_well_in_chromium(tmp_path):
    out = tmp_path / "site"
    assert _build(out, "--only", "ch04,ch11_translation") == 0
    for size in (DESKTOP, PHONE):
        _assert_the_page_reads_well(out / "index.html", size, tmp_path / "profile", sliders=2)


def test_python_dash_m_experiments_build_runs_in_a_subprocess(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "experiments", "build", "--out", str(tmp_path / "s")]
        + ["--quick", "--only", "ch03_linear"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=book.FOLDER.parent,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "[1/1] ch03_linear_collapse: passed" in done.stdout


def test_measured_numbers_read_in_readable_units():
    assert page.format_value("scratch_bytes_training", 2_500_000) == "2.5 MB"
    assert page.format_value("val_accuracy", 0.8871) == "88.7%"
    assert page.format_value("seconds_inference", 0.0123) == "12.3 ms"
    assert page.format_value("best_learning_rate", 0.01) == "0.01"  # a rate, not a share
    assert page.format_value("widths", [1, 4, 1024]) == "1, 4, 1,024"
    assert page.format_value("final_val_accuracy", {"SGD": 0.5}) == "SGD: 50.0%"
    assert page.metric_label("val_mse_by_width") == "Validation MSE by width"


def test_every_claim_is_measured_or_says_why_and_every_experiment_measures_one():
    covered = {name for c in claims.CLAIMS for name in c.covered_by}
    assert covered <= set(book.EXPERIMENTS)  # no claim names an experiment that is not there
    assert set(book.EXPERIMENTS) <= covered  # no experiment measures nothing the book claims
    for claim in claims.CLAIMS:
        assert bool(claim.covered_by) != bool(claim.uncovered.strip()), claim
        assert claim.section.strip() and claim.text.strip()
    assert {c.chapter for c in claims.CLAIMS} == set(range(1, 16))


def test_each_chapter_card_lists_its_claims_with_their_experiments(package, tmp_path):
    out = tmp_path / "site"
    _build(out, "--only", "ch03", package=package)
    html = (out / "index.html").read_text()
    chapter7 = html[html.index('id="chapter-7"') : html.index('id="chapter-8"')]
    assert chapter7.count("<li>") == len(claims.for_chapter(7))
    assert "not measured: a statement about neuroscience" in chapter7
    assert 'href="#ch07_backprop_costs_a_few_forward_passes"' not in chapter7  # not in this build
    assert "ch07_backprop_costs_a_few_forward_passes (not in this build)" in chapter7


# Containment and the cache's digest --------------------------------------------------------


def test_a_link_at_index_html_is_replaced_and_its_target_left_byte_identical(package, tmp_path):
    victim = tmp_path / "victim.html"
    victim.write_bytes(b"outside the build\n")
    out = tmp_path / "site"
    out.mkdir()
    (out / "index.html").symlink_to(victim)
    _build(out, "--only", "ch03", package=package)
    assert victim.read_bytes() == b"outside the build\n"
    assert not (out / "index.html").is_symlink() and "<html" in (out / "index.html").read_text()


def test_a_linked_output_folder_is_refused_with_one_line(package, tmp_path, capsys):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "site").symlink_to(elsewhere, target_is_directory=True)
    assert _build(tmp_path / "site", "--only", "ch03", package=package) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is a symbolic link" in err[0]
    assert list(elsewhere.iterdir()) == []


def test_a_cache_entry_planted_to_say_passed_is_not_trusted(package, tmp_path):
    out = tmp_path / "site"
    assert _build(out, "--only", "ch09", package=package) == 1  # a broken claim: not cached
    exp_dir = out / "ch09_breaks"
    record = json.loads((exp_dir / "run.json").read_text())
    assert record["status"] == "failed" and len(record["result_sha256"]) == 64
    key = book.cache_key(_where(package)["folder"], "ch09_breaks", ("_style",), quick=True)
    (exp_dir / "run.json").write_text(json.dumps({**record, "status": "passed"}))
    (exp_dir / ".cache-key").write_text(key + "\n")
    assert book._cached(exp_dir, key) is None  # metrics.json says the claim did not hold
    assert _build(out, "--only", "ch09", package=package) == 1  # rerun, and failed again
    assert json.loads((exp_dir / "run.json").read_text())["status"] == "failed"


def test_a_passing_entry_is_trusted_only_while_its_result_is_the_one_recorded(package, tmp_path):
    out = tmp_path / "site"
    assert _build(out, "--only", "ch03", package=package) == 0
    exp_dir = out / "ch03_passes"
    key = book.cache_key(_where(package)["folder"], "ch03_passes", ("_style",), quick=True)
    assert book._cached(exp_dir, key) is not None
    doc = json.loads((exp_dir / "metrics.json").read_text())
    (exp_dir / "metrics.json").write_text(json.dumps({**doc, "one": 2.0}))  # edited result
    assert book._cached(exp_dir, key) is None
