"""Figures of the house: files and lines per wing, the longest functions, the most complex ones,
and what the wheel carries.

    python scripts/house.py [--repo DIR] [--top 8] [--wheel]

Wings by path: the application is ``jaxnn/app/`` and the command's entry points, the book is
``experiments/``, the benchmarks ``benchmarks/`` (older layouts: ``jaxnn/book.py``,
``jaxnn/bench*.py``, ``scripts/bench*``), the library is the rest of ``jaxnn/``. Lines are
non-blank lines; a function's length counts its code lines without the docstring. Complexity is
radon's cyclomatic complexity when radon is installed (``pip install radon``), ruff's rule C901
counts alike. ``--wheel`` builds the wheel with pip (no dependencies) and lists its top folders.
"""

from __future__ import annotations

import argparse
import ast
import subprocess
import sys
import tempfile
import zipfile
from collections import defaultdict
from pathlib import Path

APP = ("jaxnn/app/", "jaxnn/cli.py", "jaxnn/__main__.py", "jaxnn/doctor.py")
BOOK = ("experiments/", "jaxnn/book.py")
BENCH = ("benchmarks/", "jaxnn/bench", "scripts/bench")
WINGS = ("library", "application", "book", "benchmarks")


def wing(path: str) -> str | None:
    if path.startswith(APP):
        return "application"
    if path.startswith(BOOK):
        return "book"
    if path.startswith(BENCH):
        return "benchmarks"
    return "library" if path.startswith("jaxnn/") else None


def sources(repo: Path) -> list[str]:
    out = subprocess.run(["git", "ls-files", "*.py"], cwd=repo, capture_output=True, text=True)
    return [p for p in out.stdout.split() if wing(p)]


def functions(path: Path):
    """``(qualified name, code lines)`` of every function in the file."""
    tree = ast.parse(path.read_text())
    lines = path.read_text().splitlines()

    def walk(node, prefix):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                body = child.body
                start = body[0].end_lineno if ast.get_docstring(child) else child.lineno
                code = [ln for ln in lines[start : child.end_lineno] if ln.strip()]
                code = [ln for ln in code if not ln.strip().startswith("#")]
                yield f"{prefix}{child.name}", len(code)
                yield from walk(child, f"{prefix}{child.name}.")
            elif isinstance(child, ast.ClassDef):
                yield from walk(child, f"{prefix}{child.name}.")

    yield from walk(tree, "")


def complexity(repo: Path, files: list[str]) -> list[tuple[str, int]]:
    try:
        from radon.complexity import cc_visit
    except ImportError:
        return []
    found = []
    for f in files:
        for block in cc_visit((repo / f).read_text()):
            owner = getattr(block, "classname", None)
            name = f"{owner}.{block.name}" if owner else block.name
            found.append((f"{f}:{name}", block.complexity))
    return sorted(found, key=lambda t: -t[1])


def wheel_contents(repo: Path) -> dict:
    with tempfile.TemporaryDirectory() as dist:
        subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", dist, str(repo)],
            check=True,
            capture_output=True,
        )
        (built,) = Path(dist).glob("*.whl")
        names = zipfile.ZipFile(built).namelist()
        tops = defaultdict(int)
        for n in names:
            tops[n.split("/")[0] if "/" in n else n] += 1
        return {"bytes": built.stat().st_size, "files": len(names), "top": dict(tops)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", default=".", help="the checkout to measure")
    parser.add_argument("--top", type=int, default=8, help="rows of the longest/most complex")
    parser.add_argument("--wheel", action="store_true", help="build the wheel and list it")
    args = parser.parse_args(argv)
    repo = Path(args.repo).resolve()
    files = sources(repo)
    per = {w: [0, 0] for w in WINGS}
    lengths = []
    for f in files:
        text = (repo / f).read_text()
        per[wing(f)][0] += 1
        per[wing(f)][1] += sum(1 for ln in text.splitlines() if ln.strip())
        if wing(f) == "library":
            lengths += [(f"{f}:{name}", n) for name, n in functions(repo / f)]
    print("| wing | files | lines |\n| --- | ---: | ---: |")
    for w in WINGS:
        print(f"| {w} | {per[w][0]} | {per[w][1]:,} |")
    print("\nLongest library functions (code lines):")
    for name, n in sorted(lengths, key=lambda t: -t[1])[: args.top]:
        print(f"  {n:4d}  {name}")
    library = [f for f in files if wing(f) == "library"]
    cc = complexity(repo, library)
    if cc:
        over = [c for c in cc if c[1] > 10]
        print(f"\nradon complexity, library: {len(over)} functions over 10; the highest:")
        for name, n in cc[: args.top]:
            print(f"  {n:4d}  {name}")
    if args.wheel:
        print("\nwheel:", wheel_contents(repo))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
