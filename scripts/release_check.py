"""Check a release without uploading it: build the sdist and the wheel, check them as the package
index would, install the wheel in a fresh venv and test the installed package, not the checkout.

    python scripts/release_check.py [--dist DIR] [--keep]

Steps (each prints one line; the first failure stops the check with its output):

1. copy the tracked files of the checkout (``git ls-files``) to a scratch folder and build there
   with ``python -m build`` (an sdist, then a wheel from the sdist), so the checkout stays clean;
2. ``twine check --strict`` both files (metadata, README rendering);
3. check the version is one value everywhere: ``jaxnn/__init__.py``, the file names, the wheel's
   metadata and a ``## [VERSION]`` or ``## [Unreleased]`` section of ``CHANGELOG.md``;
4. check what each file carries: the wheel the library and the application only, the sdist the
   whole source (tests, book, benchmarks, docs, changelog) so that it rebuilds the wheel;
5. create a venv, install the wheel with its ``dev`` extra (the test tools), and run the
   import and command tests (``WHEEL_TESTS``) from a folder outside the checkout, with the tests
   marked ``checkout`` left out; the check confirms that ``jaxnn`` came from the venv;
6. a smoke run of the installed ``jaxnn`` command: train, eval, predict and export on a built-in
   dataset.

The release procedure itself is in ``RELEASING.md``.
"""

from __future__ import annotations

import argparse
import email
import json
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import venv
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: The suite's import and command tests, run against the installed wheel.
WHEEL_TESTS = (
    "test_cli.py",
    "test_flags.py",
    "test_options.py",
    "test_config.py",
    "test_errors.py",
    "test_run.py",
    "test_predict.py",
    "test_export.py",
    "test_store.py",
    "test_tables.py",
    "test_datasets.py",
    "test_events.py",
)
#: What the sdist must carry besides the package: enough to rebuild and test it.
SDIST_MUST_HAVE = (
    "pyproject.toml",
    "README.md",
    "LICENSE",
    "CHANGELOG.md",
    "ARCHITECTURE.md",
    "RELEASING.md",
    "tests/conftest.py",
    "experiments/book.py",
    "benchmarks/bench.py",
    "docs/weights.md",
    "jaxnn/data/tables/digits.csv.gz",
)


class CheckFailed(Exception):
    """A step of the check failed; the message says which and why."""


def _run(cmd, *, cwd, timeout=1800, env=None) -> str:
    done = subprocess.run(
        [str(c) for c in cmd], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env
    )
    if done.returncode != 0:
        raise CheckFailed(
            f"{' '.join(map(str, cmd))} exited {done.returncode}\n"
            f"--- stdout\n{done.stdout[-4000:]}\n--- stderr\n{done.stderr[-4000:]}"
        )
    return done.stdout


def version() -> str:
    """The version in ``jaxnn/__init__.py``, read as text (the one source of it)."""
    text = (ROOT / "jaxnn" / "__init__.py").read_text(encoding="utf-8")
    found = re.search(r'^__version__ = "([^"]+)"$', text, re.M)
    if not found:
        raise CheckFailed('jaxnn/__init__.py: expected a line __version__ = "X.Y.Z", got none')
    return found.group(1)


def build(scratch: Path, dist: Path) -> tuple[Path, Path]:
    """Build the sdist and the wheel from a copy of the tracked files; returns both paths."""
    src = scratch / "src"
    tracked = _run(["git", "ls-files", "-z"], cwd=ROOT).split("\0")
    for name in filter(None, tracked):
        if (ROOT / name).is_file():
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, src / name)
    _run([sys.executable, "-m", "build", "--outdir", dist, src], cwd=src)
    (sdist,) = dist.glob("jaxnn-*.tar.gz")
    (wheel,) = dist.glob("jaxnn-*.whl")
    return sdist, wheel


def check_version(sdist: Path, wheel: Path, expected: str) -> None:
    """The version is one value in the code, both file names, the metadata and the changelog."""
    with zipfile.ZipFile(wheel) as zf:
        (meta,) = [n for n in zf.namelist() if n.endswith(".dist-info/METADATA")]
        metadata = email.message_from_bytes(zf.read(meta))
    found = {
        "sdist name": sdist.name.removeprefix("jaxnn-").removesuffix(".tar.gz"),
        "wheel name": wheel.name.split("-")[1],
        "wheel metadata": metadata["Version"],
    }
    wrong = {k: v for k, v in found.items() if v != expected}
    if wrong:
        raise CheckFailed(f"version: expected {expected} everywhere, got {wrong}")
    changelog = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    if f"## [{expected}]" not in changelog and "## [Unreleased]" not in changelog:
        raise CheckFailed(f"CHANGELOG.md: expected a section ## [{expected}], got none")


def check_contents(sdist: Path, wheel: Path) -> None:
    """The wheel carries ``jaxnn`` only; the sdist the whole source."""
    tops = {n.split("/")[0] for n in zipfile.ZipFile(wheel).namelist()}
    stray = sorted(t for t in tops if t != "jaxnn" and not t.endswith(".dist-info"))
    if stray:
        raise CheckFailed(f"wheel: expected only jaxnn/ and its .dist-info, got also {stray}")
    with tarfile.open(sdist) as tf:
        top = f"{sdist.name.removesuffix('.tar.gz')}/"
        members = {m.name.removeprefix(top) for m in tf.getmembers()}
    missing = [n for n in SDIST_MUST_HAVE if n not in members]
    if missing:
        raise CheckFailed(f"sdist: expected it to carry {missing}, got none of them")


def test_installed(scratch: Path, wheel: Path) -> str:
    """Install the wheel with the dev extra in a fresh venv, then run ``WHEEL_TESTS`` on it."""
    env_dir = scratch / "venv"
    venv.create(env_dir, with_pip=True)
    py = env_dir / "bin" / "python"
    _run([py, "-m", "pip", "install", "-q", f"{wheel}[dev]"], cwd=scratch)
    suite = scratch / "suite"
    shutil.copytree(ROOT / "tests", suite / "tests", ignore=shutil.ignore_patterns("__pycache__"))
    (suite / "pytest.ini").write_text(
        "[pytest]\nmarkers =\n    slow: long runs\n    checkout: needs the source checkout\n"
        "filterwarnings = ignore::DeprecationWarning\n"
    )
    where = _run([py, "-c", "import jaxnn; print(jaxnn.__file__)"], cwd=suite).strip()
    if not where.startswith(str(env_dir)):
        raise CheckFailed(f"the installed jaxnn: expected it under {env_dir}, got {where}")
    tests = [f"tests/{name}" for name in WHEEL_TESTS]
    marks = "not slow and not checkout"
    out = _run([py, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", marks, *tests], cwd=suite)
    return out.strip().splitlines()[-1]


def smoke(scratch: Path) -> None:
    """The installed command trains, scores, predicts and exports on a built-in dataset."""
    jaxnn = scratch / "venv" / "bin" / "jaxnn"
    work = scratch / "smoke"
    work.mkdir()
    run = work / "run"
    train = ["train", "--model", "mlp", "--dataset", "digits", "--epochs", "1", "--no-progress"]
    _run([jaxnn, *train, "--out", run], cwd=work)
    _run([jaxnn, "eval", "--out", run, "--split", "test"], cwd=work)
    info = json.loads((run / "data_info.json").read_text())
    make = f"import numpy as np; np.save('new.npy', np.zeros((3, *{info['input_shape']!r})))"
    _run([scratch / "venv" / "bin" / "python", "-c", make], cwd=work)
    rows = _run([jaxnn, "predict", "--out", run, "--input", "new.npy"], cwd=work)
    if len(rows.strip().splitlines()) != 4:  # a header and one row per input
        raise CheckFailed(f"jaxnn predict: expected a header and 3 rows, got {rows!r}")
    _run([jaxnn, "export", "--out", run], cwd=work)
    if not (run / "export" / "model.safetensors").is_file():
        raise CheckFailed("jaxnn export: expected RUN/export/model.safetensors, got none")


def main(argv=None) -> int:
    """Run every step; exit 0 when all pass, 1 with the failing step's output otherwise."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dist", type=Path, help="keep the built files here (default: scratch)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder")
    args = parser.parse_args(argv)
    scratch = Path(tempfile.mkdtemp(prefix="jaxnn-release-"))
    dist = (args.dist or scratch / "dist").resolve()
    dist.mkdir(parents=True, exist_ok=True)
    try:
        expected = version()
        sdist, wheel = build(scratch, dist)
        print(f"release: built {sdist.name} and {wheel.name}", flush=True)
        _run([sys.executable, "-m", "twine", "check", "--strict", sdist, wheel], cwd=scratch)
        print("release: twine check --strict passed", flush=True)
        check_version(sdist, wheel, expected)
        check_contents(sdist, wheel)
        print(f"release: version {expected} everywhere; contents as expected", flush=True)
        print(f"release: installed wheel tests: {test_installed(scratch, wheel)}", flush=True)
        smoke(scratch)
        print("release: the installed jaxnn trains, evaluates and exports", flush=True)
    except CheckFailed as failed:
        print(f"release: FAILED: {failed}", file=sys.stderr)
        return 1
    finally:
        if not args.keep:
            shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
