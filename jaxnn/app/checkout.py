"""``jaxnn book`` and ``jaxnn bench``: commands whose code lives in the source checkout.

The book (``experiments/``: the experiments and their runner) and the benchmarks
(``benchmarks/``: the benchmark harness and its PyTorch, Flax and hand-written JAX twins) are
wings of the repository, not of the installed package, as Flax keeps its examples out of
``flax``. These two commands run them as their own programs, ``python -m experiments.book ...``
and ``python -m benchmarks ...``, from the checkout this ``jaxnn`` was installed from (``pip
install -e .``); the command line imports neither. An install from a wheel has no checkout, and
the command says so in one line.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
from pathlib import Path

import jaxnn
from jaxnn.errors import UserError

__all__ = ["PROGRAMS", "add_parsers", "checkout_root", "run"]

#: command -> (the folder it needs, the module it runs, what it is)
PROGRAMS = {
    "book": ("experiments", "experiments.book", "the book: every chapter's experiments"),
    "bench": ("benchmarks", "benchmarks", "jaxnn's train step beside PyTorch, Flax and pure JAX"),
}


def checkout_root() -> Path | None:
    """The source checkout this ``jaxnn`` runs from (the folder above the package), or None."""
    root = Path(jaxnn.__file__).resolve().parent.parent
    return root if (root / "pyproject.toml").is_file() else None


def add_parsers(subparsers) -> None:
    """``book`` and ``bench``: every argument after the command goes to the program."""
    for command, (_, module, what) in PROGRAMS.items():
        p = subparsers.add_parser(
            command,
            help=f"{what} (runs `python -m {module}` in the source checkout; --help for more)",
            add_help=False,
            prefix_chars="\0",  # nothing is an option here: all of it is forwarded
        )
        p.add_argument("forwarded", nargs=argparse.REMAINDER)


def run(args) -> int:
    """Run the command's program with the arguments given; return its exit status."""
    folder, module, what = PROGRAMS[args.command]
    root = checkout_root()
    if root is None or not (root / folder / "__init__.py").is_file():
        raise UserError(
            f"{what} lives in the source repository's {folder}/ folder, and this install (from "
            f"a wheel) has none; clone the repository, `pip install -e .` there, and run "
            f"`jaxnn {args.command}` or `python -m {module}` in it"
        )
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(root), env.get("PYTHONPATH")) if p)
    proc = subprocess.Popen([sys.executable, "-m", module, *args.forwarded], env=env)
    forward = lambda signum, frame: proc.send_signal(signum)  # the program decides what to do
    previous = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        return proc.wait()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, signal.SIG_DFL if handler is None else handler)
