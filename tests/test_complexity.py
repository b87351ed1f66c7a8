"""The library reads one small function at a time: no function of ``jaxnn/`` outside the
application (``jaxnn/app``) has a cyclomatic complexity over 10, measured by radon as
``radon cc -n C`` does (ruff's C901 counts a little differently, so both are kept)."""

from __future__ import annotations

from pathlib import Path

import pytest

radon_complexity = pytest.importorskip("radon.complexity")

ROOT = Path(__file__).resolve().parents[1]
LIBRARY = ROOT / "jaxnn"
MAX_COMPLEXITY = 10


def library_files() -> list[Path]:
    """Every module of the library wing: ``jaxnn/`` without the application."""
    files = sorted(LIBRARY.rglob("*.py"))
    return [f for f in files if "app" not in f.relative_to(LIBRARY).parts[:1]]


def over_limit(source: str, limit: int = MAX_COMPLEXITY) -> list[str]:
    """``name (complexity)`` of each function or method in ``source`` over ``limit``."""
    found = set()
    for block in radon_complexity.cc_visit(source):
        functions = block.methods if hasattr(block, "methods") else [block, *block.closures]
        found |= {f"{f.fullname} ({f.complexity})" for f in functions if f.complexity > limit}
    return sorted(found)


def test_the_measure_sees_a_branchy_function():
    branches = "\n".join(f"    if x == {i}:\n        return {i}" for i in range(11))
    assert over_limit(f"def f(x):\n{branches}\n    return -1\n") == ["f (12)"]
    assert over_limit("def g(x):\n    return x if x else 0\n") == []
    indented = "\n".join("    " + line for line in branches.splitlines())
    method = f"class C:\n    def m(self, x):\n{indented}\n        return -1\n"
    assert over_limit(method) == ["C.m (12)"]


def test_the_library_is_its_own_wing_without_the_application():
    names = {f.relative_to(LIBRARY).as_posix() for f in library_files()}
    assert "train/loop.py" in names and "layers/dense.py" in names
    assert not any(name.startswith("app/") for name in names)


def test_no_library_function_is_over_complexity_10():
    found = {
        f.relative_to(ROOT).as_posix(): over_limit(f.read_text(encoding="utf-8"))
        for f in library_files()
    }
    found = {path: names for path, names in found.items() if names}
    assert found == {}, f"split these functions (radon complexity over {MAX_COMPLEXITY}): {found}"
