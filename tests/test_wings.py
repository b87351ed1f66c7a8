"""The four wings: the library (``jaxnn``), the application (``jaxnn.app``), the book
(``experiments``) and the benchmarks (``benchmarks``), and the rules between them.

- The import graph of the whole tree has no cycle, the library imports nothing from the other
  wings nor the process setting (``jaxnn.host_memory``), the training loop imports no model, the
  application imports neither the book nor the benchmarks, and the book imports nothing from the
  application.
- Importing every library module, and training with it, changes nothing in the process: no
  ``mallopt``, no matplotlib backend or rcParams, no JAX config, no environment variable, no
  signal handler, no logging level. Recorded by intercepting them in a fresh interpreter.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TREES = ("jaxnn", "experiments", "benchmarks")
APP = ("jaxnn.app", "jaxnn.cli", "jaxnn.__main__")  # jaxnn.cli: the deprecated alias
PROCESS = ("jaxnn.host_memory",)


def _wing(module: str) -> str:
    top = module.split(".")[0]
    if top == "experiments":
        return "book"
    if top == "benchmarks":
        return "bench"
    if any(module == p or module.startswith(p + ".") for p in APP):
        return "app"
    return "process" if module in PROCESS else "library"


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(tree: ast.AST):
    """The import statements of a module, leaving out those inside ``def __getattr__`` (a
    module's lazy alias of a moved name, run only when the old name is used)."""
    pending = [tree]
    while pending:
        node = pending.pop()
        if isinstance(node, ast.FunctionDef) and node.name == "__getattr__":
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        pending.extend(ast.iter_child_nodes(node))


def _import_graph() -> dict[str, set[str]]:
    """Every module of the three trees and the modules of the trees it imports, at any depth
    of its code (a function-level import counts)."""
    files = {_module_name(p): p for tree in TREES for p in (ROOT / tree).rglob("*.py")}
    graph = {}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        edges = set()
        for node in _imports(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                base = node.module or ""
                if node.level:
                    base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
                    base = f"{base}.{node.module}" if node.module else base
                targets = [
                    f"{base}.{a.name}" if f"{base}.{a.name}" in files else base for a in node.names
                ]
            edges |= {t for t in targets if t in files and t != name}
        graph[name] = edges
    return graph


def _find_cycle(graph):
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        state[node] = "done"
        stack.pop()
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def _violations(graph, source, target) -> list[str]:
    return sorted(
        f"{a} -> {b}" for a, deps in graph.items() if source(a) for b in deps if target(b)
    )


@pytest.fixture(scope="module")
def graph():
    return _import_graph()


def test_the_import_graph_of_the_tree_has_no_cycle(graph):
    assert len(graph) > 60 and {_wing(m) for m in graph} == {
        "library", "app", "book", "bench", "process"
    }  # fmt: skip
    assert _find_cycle(graph) is None, " -> ".join(_find_cycle(graph))


def test_the_cycle_finder_finds_a_cycle():
    assert _find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _find_cycle({"a": {"b"}, "b": set()}) is None


@pytest.mark.parametrize("other", ["app", "book", "bench", "process"])
def test_the_library_imports_nothing_from_another_wing(graph, other):
    library = lambda m: _wing(m) == "library"
    assert _violations(graph, library, lambda m: _wing(m) == other) == []


def test_the_training_loop_imports_no_model(graph):
    train = lambda m: m.startswith("jaxnn.train")
    assert _violations(graph, train, lambda m: m.startswith("jaxnn.models")) == []


@pytest.mark.parametrize("other", ["book", "bench"])
def test_the_application_imports_neither_the_book_nor_the_benchmarks(graph, other):
    app = lambda m: _wing(m) == "app"
    assert _violations(graph, app, lambda m: _wing(m) == other) == []


def test_the_book_imports_nothing_from_the_application(graph):
    book, app = (lambda m: _wing(m) == "book"), (lambda m: _wing(m) == "app")
    assert _violations(graph, book, app) == []
    planted = {"experiments.ch14_failure_modes": {"jaxnn.app.doctor", "jaxnn.diagnostics"}}
    assert _violations(planted, book, app) == ["experiments.ch14_failure_modes -> jaxnn.app.doctor"]


def test_the_rule_checker_sees_a_planted_upward_import(tmp_path):
    planted = {"jaxnn.train.loop": {"jaxnn.app.cli", "jaxnn.models"}, "jaxnn.app.cli": set()}
    library = lambda m: _wing(m) == "library"
    assert _violations(planted, library, lambda m: _wing(m) == "app") == [
        "jaxnn.train.loop -> jaxnn.app.cli"
    ]


def library_modules() -> list[str]:
    files = (_module_name(p) for p in (ROOT / "jaxnn").rglob("*.py"))
    return sorted(m for m in files if _wing(m) == "library")


# A fresh interpreter imports the dependencies, records every process-wide setting, imports
# every library module given on its command line, trains a tiny model with a run directory (fit
# writes TensorBoard files and checkpoints and draws curves.png), and prints what changed.
# mallopt is intercepted at ctypes, matplotlib.use at matplotlib, and jax.config.update at jax;
# the settings themselves are compared before and after too.
_PROBE = r"""
import ctypes, importlib, json, logging, os, signal, sys, warnings
calls = []
_CDLL = ctypes.CDLL
class CDLL(_CDLL):
    def __getattr__(self, name):
        if name == "mallopt":
            calls.append("mallopt")
        return super().__getattr__(name)
    def __getitem__(self, name):
        if name == "mallopt":
            calls.append("mallopt")
        return super().__getitem__(name)
ctypes.CDLL = CDLL
import matplotlib
_use = matplotlib.use
matplotlib.use = lambda *a, **k: (calls.append(f"matplotlib.use{a}"), _use(*a, **k))[1]
import jax, orbax.checkpoint  # what they set on import is theirs
_update = jax.config.update
jax.config.update = lambda *a, **k: (calls.append(f"jax.config.update{a}"), _update(*a, **k))[1]

def snapshot():
    return {
        "rcParams": {k: repr(v) for k, v in dict.items(matplotlib.rcParams)},  # unresolved
        "jax": {k: repr(v) for k, v in jax.config.values.items()},
        "environ": dict(os.environ),
        "signals": {s: repr(signal.getsignal(s)) for s in (signal.SIGINT, signal.SIGTERM)},
        "logging": {n: logging.getLogger(n).level for n in ("", "absl", "jax", "orbax")},
        "recursion": sys.getrecursionlimit(),
        "warnings": repr(warnings.filters),
    }

before = snapshot()
for name in sys.argv[2:]:
    importlib.import_module(name)
after_import = snapshot()
from jaxnn import data, models
from jaxnn.train import FitConfig, fit
splits = data.load("synthetic:moons", seed=0, n=200)
cfg = FitConfig(epochs=1, batch_size=32, progress=False)
fit(models.build("mlp", splits.info, hidden=(8,)), splits, cfg, out_dir=sys.argv[1], verbose=False)
after_fit = snapshot()
changed = {
    when: sorted(k for k in before if before[k] != now[k])
    for when, now in (("import", after_import), ("fit", after_fit))
}
print(json.dumps({"calls": calls, "changed": changed, "loaded": sorted(sys.modules)}))
"""


@pytest.fixture(scope="module")
def probe(tmp_path_factory):
    # a bare process: without the suite's compilation cache (jax sets a cache option of its own
    # on the first compile when one is on)
    drop = (
        "JAXNN_HOST_MALLOC",
        "JAX_COMPILATION_CACHE_DIR",
        "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS",
    )
    env = {k: v for k, v in os.environ.items() if k not in drop}
    out = tmp_path_factory.mktemp("run")
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, str(out), *library_modules()],
        capture_output=True, text=True, cwd=ROOT, env=env, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert (out / "curves.png").is_file()
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_importing_every_library_module_and_training_calls_no_process_setting(probe):
    assert probe["calls"] == []


def test_importing_every_library_module_and_training_changes_no_process_setting(probe):
    assert probe["changed"] == {"import": [], "fit": []}


def test_the_library_loads_neither_the_application_nor_the_book_nor_torch_flax_or_chex(probe):
    loaded = probe["loaded"]
    assert "jaxnn.train" in loaded and "jaxnn.diagnostics" in loaded  # the probe did its work
    other = [m for m in loaded if m.split(".")[0] in ("experiments", "benchmarks", "torch")]
    other += [m for m in loaded if m.split(".")[0] in ("flax", "chex") or m in APP]
    assert other == [] and "jaxnn.host_memory" not in loaded


def test_the_probe_notices_a_process_setting(tmp_path):
    """The interceptions work: a module that switches the backend and calls mallopt is seen."""
    (tmp_path / "noisy.py").write_text(
        "import ctypes, matplotlib\nmatplotlib.use('Agg')\n"
        "ctypes.CDLL('libc.so.6').mallopt\nimport jax\njax.config.update('jax_enable_x64', True)\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)])}
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, str(tmp_path / "run"), "noisy"],
        capture_output=True, text=True, cwd=ROOT, env=env, timeout=600,
    )  # fmt: skip
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert {"matplotlib.use('Agg',)", "mallopt"} <= set(got["calls"])
    assert "jax.config.update('jax_enable_x64', True)" in got["calls"]
    assert "jax" in got["changed"]["import"]
