"""The shared harness of the experiments: one script per claim of the book.

Each script measures a claim, draws it and asserts it. ``Experiment`` parses ``--quick`` (tiny
sizes, seconds) and ``--out DIR`` (default ``runs/experiments/<name>``), collects the measured
numbers, saves the figure, and writes ``metrics.json`` with the claim as text and whether it held.
:meth:`Experiment.check` records one assertion; the first that fails ends the run with exit code 1.

Importing this module applies the shared figure style (:mod:`experiments.style`), and
:meth:`Experiment.save` stamps a "QUICK RUN" banner on every figure of a ``--quick`` run and writes
an SVG twin of each PNG. The hidden flag ``--break-claim`` makes the first check fail on purpose,
so that tools can test how a failed claim is reported.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from experiments.style import apply_style, mark_quick  # noqa: E402

__all__ = ["Experiment", "plt"]

apply_style()


def machine() -> dict:
    """Where the experiment ran: OS, CPU, core count, JAX version, backend and devices."""
    info = {
        "system": f"{platform.system()} {platform.machine()}",
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
    }
    jax = sys.modules.get("jax")
    if jax is not None:
        devices = jax.devices()
        info.update(
            jax=jax.__version__,
            backend=jax.default_backend(),
            devices=f"{len(devices)} x {devices[0].device_kind}",
        )
    return info


class Experiment:
    """One run of one experiment: parsed args, output directory, metrics and checks."""

    def __init__(self, name: str, claim: str, argv=None):
        parser = argparse.ArgumentParser(description=claim)
        parser.add_argument("--quick", action="store_true", help="tiny sizes that run in seconds")
        parser.add_argument("--out", default=f"runs/experiments/{name}", help="output directory")
        parser.add_argument("--break-claim", action="store_true", help=argparse.SUPPRESS)
        self.args = parser.parse_args(argv)
        self.quick = self.args.quick
        self.out = Path(self.args.out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.name, self.claim = name, claim
        self.metrics: dict = {}
        self.checks: list[dict] = []
        self.notes: list[str] = []
        self._svgs: list[str] = []
        self._t0 = time.perf_counter()

    def record(self, **values) -> None:
        """Store measured numbers (JSON-able) and print them."""
        self.metrics.update(values)
        for k, v in values.items():
            print(f"{k}: {v:.6g}" if isinstance(v, float) else f"{k}: {v}", flush=True)

    def check(self, condition: bool, message: str) -> None:
        """Record an assertion; on failure write ``metrics.json`` and exit with code 1."""
        held = bool(condition)
        if self.args.break_claim and not self.checks:
            held, message = False, f"{message} [broken on purpose by --break-claim]"
        self.checks.append({"assertion": message, "held": held})
        print(f"[{'PASS' if held else 'FAIL'}] {message}", flush=True)
        if not held:
            self._write(False)
            sys.exit(1)

    def save(self, fig, filename: str = "figure.png") -> Path:
        """Save a matplotlib figure under ``out`` as PNG (and an SVG twin) and close it.

        A ``--quick`` run's figure gets the "QUICK RUN" banner above its axes.
        """
        path = self.out / filename
        fig.tight_layout()
        if self.quick:
            mark_quick(fig)
        fig.savefig(path, bbox_inches="tight")
        if path.suffix == ".png":
            svg = path.with_suffix(".svg")
            fig.savefig(svg, bbox_inches="tight")
            self._svgs.append(svg.name)
        plt.close(fig)
        self.metrics.setdefault("figures", []).append(filename)
        return path

    def finish(self) -> None:
        """Write ``metrics.json`` with ``claim_held`` true (every check passed)."""
        self._write(True)
        print(f"claim held: {self.claim} -> {self.out / 'metrics.json'}", flush=True)

    def _write(self, held: bool) -> None:
        doc = {
            "experiment": self.name,
            "claim": self.claim,
            "claim_held": held,
            "quick": self.quick,
            "notes": self.notes,
            "checks": self.checks,
            "metrics": self.metrics,
            "figures_svg": self._svgs,
            "seconds": round(time.perf_counter() - self._t0, 3),
            "command": f"python -m experiments.{self.name}" + (" --quick" if self.quick else ""),
            "machine": machine(),
        }
        (self.out / "metrics.json").write_text(json.dumps(doc, indent=2) + "\n")
