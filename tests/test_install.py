"""The built wheel: what it carries (the library and the application, not the book or the
benchmarks), and that it trains from a fresh venv without the dev extra.

The wheel is built with pip (build isolation, so the registry or pip's cache must have setuptools)
from a copy of the sources, so the checkout stays clean. The full install is ``slow``: it creates a
venv and installs the runtime dependencies (jax, orbax, ...) from pip's cache or the registry.
"""

import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("pyproject.toml", "README.md", "LICENSE", "jaxnn", "experiments", "benchmarks")
DEV_ONLY = ("flax", "chex", "pytest", "hypothesis", "sklearn", "pandas", "mlxtend")


def _run(cmd, *, cwd, timeout):
    out = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, (
        f"{cmd}\n--- stdout\n{out.stdout[-3000:]}\n--- stderr\n{out.stderr[-3000:]}"
    )
    return out.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    src = tmp_path_factory.mktemp("src")
    for name in SOURCES:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(path, src / name)
    dist = tmp_path_factory.mktemp("dist")
    _run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", dist, src],
        cwd=src,
        timeout=600,
    )
    (built,) = dist.glob("jaxnn-*.whl")
    return built


def test_wheel_carries_every_module_the_tables_py_typed_and_the_license(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    modules = {
        f"jaxnn/{p.relative_to(ROOT / 'jaxnn').as_posix()}" for p in (ROOT / "jaxnn").rglob("*.py")
    }
    tables = {f"jaxnn/data/tables/{p.name}" for p in (ROOT / "jaxnn/data/tables").iterdir()}
    assert modules - names == set() and "jaxnn/app/cli.py" in names
    assert {"jaxnn/data/tables/digits.csv.gz", "jaxnn/data/tables/mnist_5k.csv.gz"} <= tables
    assert tables - names == set()
    assert "jaxnn/py.typed" in names
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert not any(n.startswith("tests/") for n in names)


def test_wheel_carries_neither_the_book_nor_the_benchmarks_nor_a_twin(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    outside = [n for n in names if n.split("/")[0] in ("experiments", "benchmarks", "scripts")]
    twins = [n for n in names if "twins" in n or "bench" in n or "/experiments/" in n]
    assert outside == [] and twins == []
    assert all(n.split("/")[0] == "jaxnn" or ".dist-info/" in n for n in names)


def test_wheel_metadata_has_no_dev_or_table_reader_dependencies(wheel):
    with zipfile.ZipFile(wheel) as zf:
        (meta,) = [n for n in zf.namelist() if n.endswith(".dist-info/METADATA")]
        lines = zf.read(meta).decode().splitlines()
    requires = [Requirement(ln.split(":", 1)[1]) for ln in lines if ln.startswith("Requires-Dist:")]
    runtime = {r.name.lower() for r in requires if r.marker is None}
    dev = {r.name.lower() for r in requires if r.marker and r.marker.evaluate({"extra": "dev"})}
    assert {"jax", "optax", "orbax-checkpoint", "numpy"} <= runtime
    assert runtime.isdisjoint({"flax", "chex", "scikit-learn", "mlxtend", "pandas", "pytest"})
    assert {"flax", "chex", "pytest"} <= dev
    assert "License-Expression: Apache-2.0" in lines


@pytest.mark.slow
def test_wheel_in_fresh_venv_without_dev_extra_trains_and_says_where_the_book_is(wheel, tmp_path):
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    py = str(env_dir / "bin" / "python")
    _run([py, "-m", "pip", "install", "-q", str(wheel)], cwd=tmp_path, timeout=1200)
    work = tmp_path / "elsewhere"  # outside the checkout: only the installed package is importable
    work.mkdir()
    probe = (
        "import importlib.util, jaxnn\n"
        "print(jaxnn.__file__)\n"
        f"print(sorted(n for n in {DEV_ONLY!r} if importlib.util.find_spec(n)))\n"
    )
    where, present = _run([py, "-c", probe], cwd=work, timeout=300).splitlines()
    assert str(env_dir) in where and present == "[]"
    jaxnn_cli = str(env_dir / "bin" / "jaxnn")
    train = [jaxnn_cli, "train", "--model", "mlp", "--dataset", "synthetic:moons", "--epochs", "1"]
    _run([*train, "--out", str(work / "run")], cwd=work, timeout=600)
    assert (work / "run" / "summary.json").is_file()
    loaded = "import sys, jaxnn.app.cli, jaxnn.train, jaxnn.diagnostics\n"
    loaded += "print(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'flax', 'chex'}))"
    assert _run([py, "-c", loaded], cwd=work, timeout=300).strip() == "[]"
    book = subprocess.run([jaxnn_cli, "book", "build"], cwd=work, capture_output=True, text=True)
    assert book.returncode == 2 and "source repository" in book.stderr
    assert len(book.stderr.strip().splitlines()) == 1
    tables = "from jaxnn.data import load\nfor n in ('digits', 'mnist5k'):\n    load(n, seed=0)\n"
    _run([py, "-c", tables], cwd=work, timeout=300)
