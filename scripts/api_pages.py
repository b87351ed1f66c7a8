"""Write the API reference pages of the docs site (``docs/api/*.md``): one page per part of the
library, one ``:::`` block per public module, so mkdocstrings renders every public docstring.

    python scripts/api_pages.py          # rewrite docs/api/
    python scripts/api_pages.py --check  # exit 1 if docs/api/ is not what this would write

A module whose name starts with ``_`` is private and left out; ``tests/test_docs_site.py`` checks
that the pages are current, so a new public module cannot be left out of the reference.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
API = ROOT / "docs" / "api"

#: modules kept only as deprecated aliases of moved ones, left out of the reference
DEPRECATED = ("jaxnn.cli",)

#: page -> (title, introduction, the modules before the package's own)
PAGES = {
    "core": (
        "Activations, losses, initializers, optimizers, gradient checks",
        "The modules of chapters 2 to 8 that the layers, models and training loop are built from.",
        (
            "jaxnn.activations",
            "jaxnn.losses",
            "jaxnn.initializers",
            "jaxnn.optim",
            "jaxnn.gradcheck",
            "jaxnn.parallel",
            "jaxnn.errors",
            "jaxnn.host_memory",
        ),
    ),
    "layers": ("Layers", "Pure init and apply functions (chapters 5 and 10 to 12).", ()),
    "models": ("Models", "MLP, CNN, RNN and Transformer under one contract (chapters 10-12).", ()),
    "data": ("Data", "Sources, splits and pipelines, all offline (chapter 9).", ()),
    "train": (
        "Training",
        "The step, the loop, checkpoints and run directories (6, 8, 13, 15).",
        (),
    ),
    "diagnostics": ("Diagnostics", "Chapter 14's detectors and the doctor's engine.", ()),
    "weights": ("Weights that travel", "safetensors files and the PyTorch and Flax layouts.", ()),
    "app": (
        "The jaxnn command",
        "The application wing. A program of yours imports the library; these modules are "
        "documented for those who extend the command.",
        (),
    ),
}


def public_modules(package: str) -> list[str]:
    """The public submodules of ``package`` (``jaxnn.layers`` -> ``jaxnn.layers.conv``, ...)."""
    folder = ROOT / package.replace(".", "/")
    return [
        f"{package}.{p.stem}" for p in sorted(folder.glob("*.py")) if not p.stem.startswith("_")
    ]


def render(page: str) -> str:
    """The Markdown of one API page."""
    title, intro, modules = PAGES[page]
    if page == "core":  # the chapters' order first, then any other top-level module
        rest = [m for m in public_modules("jaxnn") if m not in modules and m not in DEPRECATED]
        modules = (*modules, *rest)
    blocks = [f"::: {m}" for m in modules]
    if not modules:  # a package: its docstring alone, then each submodule with its members
        package = f"jaxnn.{page}"
        blocks = [f"::: {package}\n    options:\n      members: false"]
        blocks += [f"::: {m}" for m in public_modules(package)]
    return "\n\n".join([f"# {title}", intro, *blocks]) + "\n"


def _current(path: Path) -> str | None:
    return path.read_text() if path.is_file() else None


def main(argv=None) -> int:
    """Write the pages, or with ``--check`` say which are out of date."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="compare, write nothing")
    args = parser.parse_args(argv)
    stale = [p for p in PAGES if _current(API / f"{p}.md") != render(p)]
    if args.check:
        for page in stale:
            print(f"docs/api/{page}.md: out of date (python scripts/api_pages.py)", file=sys.stderr)
        return 1 if stale else 0
    API.mkdir(parents=True, exist_ok=True)
    for page in PAGES:
        (API / f"{page}.md").write_text(render(page))
    return 0


if __name__ == "__main__":
    sys.exit(main())
