"""The shared harness of the experiments: one script per claim of the book.

Each script measures a claim, draws it and asserts it. ``Experiment`` parses ``--quick`` (tiny
sizes, seconds) and ``--out DIR`` (default ``runs/experiments/<name>``), collects the measured
numbers, saves the figure, and writes ``metrics.json`` with the claim as text and whether it held.
:meth:`Experiment.check` records one assertion; the first that fails ends the run with exit code 1.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

__all__ = ["Experiment", "plt"]


class Experiment:
    """One run of one experiment: parsed args, output directory, metrics and checks."""

    def __init__(self, name: str, claim: str, argv=None):
        parser = argparse.ArgumentParser(description=claim)
        parser.add_argument("--quick", action="store_true", help="tiny sizes that run in seconds")
        parser.add_argument("--out", default=f"runs/experiments/{name}", help="output directory")
        self.args = parser.parse_args(argv)
        self.quick = self.args.quick
        self.out = Path(self.args.out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.name, self.claim = name, claim
        self.metrics: dict = {}
        self.checks: list[dict] = []
        self.notes: list[str] = []

    def record(self, **values) -> None:
        """Store measured numbers (JSON-able) and print them."""
        self.metrics.update(values)
        for k, v in values.items():
            print(f"{k}: {v:.6g}" if isinstance(v, float) else f"{k}: {v}", flush=True)

    def check(self, condition: bool, message: str) -> None:
        """Record an assertion; on failure write ``metrics.json`` and exit with code 1."""
        held = bool(condition)
        self.checks.append({"assertion": message, "held": held})
        print(f"[{'PASS' if held else 'FAIL'}] {message}", flush=True)
        if not held:
            self._write(False)
            sys.exit(1)

    def save(self, fig, filename: str = "figure.png") -> Path:
        """Save a matplotlib figure under ``out`` and close it."""
        path = self.out / filename
        fig.tight_layout()
        fig.savefig(path, dpi=100)
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
        }
        (self.out / "metrics.json").write_text(json.dumps(doc, indent=2) + "\n")
