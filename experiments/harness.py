"""The shared harness of the experiments: one script per claim of the book.

Each script measures a claim, draws it and asserts it. ``Experiment`` parses ``--quick`` (tiny
sizes, seconds) and ``--out DIR`` (default ``runs/experiments/<name>``), collects the measured
numbers, saves the figures, and writes ``metrics.json`` with the claim as text and whether it held.
:meth:`Experiment.check` records one assertion; the first that fails ends the run with exit code 1.

A figure is one or more panels (:func:`experiments.style.panels`), saved together by
:meth:`Experiment.save` with a one-line caption (what to look at) and an alt text per panel: each
panel as an SVG (what the page shows), and all of them side by side as one PNG. Before saving, the
harness refuses a figure with text under :data:`~experiments.style.MIN_FONT_PT`, a legend entry
whose curve is not drawn, a grid over an image, or a panel wider than
:data:`~experiments.style.MAX_PANEL_IN` (its text would read under 10 px on a phone).
:meth:`Experiment.slider` saves one frame per value of a knob (a learning rate, a patience), which
the page shows under a slider.

Importing this module applies the shared figure style (:mod:`experiments.style`), and a ``--quick``
run's panels carry a "QUICK RUN" banner. The hidden flag ``--break-claim`` makes the first check
fail on purpose, so that tools can test how a failed claim is reported.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import platform
import re
import sys
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.collections import Collection  # noqa: E402
from matplotlib.text import Text  # noqa: E402

from experiments.style import (  # noqa: E402
    MAX_PANEL_IN,
    MIN_FONT_PT,
    apply_style,
    mark_quick,
    plain_log_ticks,
)

__all__ = ["Experiment", "FigureError", "plt", "check_figure"]

apply_style()


class FigureError(ValueError):
    """A figure that would read badly on the page (small text, an undrawn legend entry, ...)."""


def fit_config(**settings):
    """The :class:`jaxnn.train.FitConfig` of an experiment: ``settings`` with
    ``last_batch="drop"`` unless given, the batches the book's figures were measured with (every
    step one shape, as the MNIST-1D recipes keep it)."""
    from jaxnn.train import FitConfig

    return FitConfig(**{"last_batch": "drop", **settings})


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


def _visible_texts(fig):
    for text in fig.findobj(Text):
        if text.get_visible() and text.get_text().strip() and text.figure is not None:
            yield text


def _drawn_in_view(artist, ax) -> bool:
    """Whether a labelled line or collection has at least one finite point inside ``ax``."""
    if isinstance(artist, Collection):
        offsets = np.asarray(artist.get_offsets(), dtype=float)
        if offsets.size == 0:
            return bool(len(artist.get_paths()))  # bars, fills: drawn where their paths are
        x, y = offsets[:, 0], offsets[:, 1]
    else:
        x = np.asarray(artist.get_xdata(), dtype=float)
        y = np.asarray(artist.get_ydata(), dtype=float)
        if getattr(artist, "get_transform", None) and artist.get_transform() != ax.transData:
            return bool(np.isfinite(x).any() and np.isfinite(y).any())  # axhline, axvline
    (x0, x1), (y0, y1) = sorted(ax.get_xlim()), sorted(ax.get_ylim())
    inside = np.isfinite(x) & np.isfinite(y) & (x >= x0) & (x <= x1) & (y >= y0) & (y <= y1)
    return bool(inside.any())


def check_figure(fig) -> None:
    """Raise :class:`FigureError` if ``fig`` has text under :data:`MIN_FONT_PT` (mathtext
    included: its superscripts are smaller), a legend that lists a curve drawn nowhere in its
    axes, or grid lines over an image."""
    fig.canvas.draw()
    for text in _visible_texts(fig):
        if text.get_text().count("$") >= 2:
            raise FigureError(
                f"text {text.get_text()!r} uses mathtext, whose sub- and superscripts are drawn "
                "at 70% of the font size; write it in plain text (unicode superscripts)"
            )
        if text.get_fontsize() < MIN_FONT_PT - 1e-6:
            raise FigureError(
                f"text {text.get_text()!r} is {text.get_fontsize():g} pt; expected >= "
                f"{MIN_FONT_PT:g} pt so that it reads at 10 px on the page"
            )
    for ax in fig.axes:
        if ax.get_legend() is not None:
            for artist in [*ax.lines, *ax.collections]:
                label = artist.get_label() or ""
                if label and not label.startswith("_") and not _drawn_in_view(artist, ax):
                    raise FigureError(f"the legend lists {label!r}, which is not drawn in view")
        if ax.images and any(
            line.get_visible() for line in [*ax.get_xgridlines(), *ax.get_ygridlines()]
        ):
            raise FigureError(f"axes {ax.get_title()!r} draws a grid over an image")


def _save_svg(fig, path: Path) -> None:
    """Save ``fig`` as an SVG no wider than :data:`MAX_PANEL_IN` (wider, its text would read
    under 10 px on a phone)."""
    fig.savefig(path, bbox_inches="tight")
    head = path.read_text(encoding="utf-8")[:4000]
    width = float(re.search(r'<svg[^>]*\swidth="([\d.]+)pt"', head).group(1)) / 72
    if width > MAX_PANEL_IN:
        path.unlink()
        raise FigureError(
            f"{path.name} is {width:.2f} in wide; expected <= {MAX_PANEL_IN} in so that its text "
            "reads at 10 px on a phone (a shorter legend, labels or title, or a legend below)"
        )


def _png_bytes(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    return buf.getvalue()


def _side_by_side(pngs: list[bytes], gap: int = 12) -> bytes:
    """Panels (PNG bytes) in one row on white, top-aligned, as one PNG."""
    from PIL import Image

    images = [Image.open(io.BytesIO(p)).convert("RGB") for p in pngs]
    width = sum(i.width for i in images) + gap * (len(images) - 1)
    row = Image.new("RGB", (width, max(i.height for i in images)), "white")
    x = 0
    for image in images:
        row.paste(image, (x, 0))
        x += image.width + gap
    buf = io.BytesIO()
    row.save(buf, format="PNG")
    return buf.getvalue()


def _as_list(value, n: int, what: str) -> list[str]:
    items = [value] if isinstance(value, str) else list(value)
    if len(items) != n or not all(isinstance(s, str) and s.strip() for s in items):
        raise FigureError(f"expected {n} non-empty {what} (one per panel), got {value!r}")
    return items


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
        self.figures: list[dict] = []
        self.sliders: list[dict] = []
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

    def _finish_panel(self, fig) -> None:
        plain_log_ticks(fig)
        fig.tight_layout()
        check_figure(fig)
        if self.quick:
            mark_quick(fig)

    def save(self, figs, filename: str = "figure.png", *, caption: str, alt) -> Path:
        """Save a figure of one or more panels under ``out`` and close them.

        Writes ``filename`` (a PNG of the panels side by side) and one SVG per panel
        (``stem.svg`` for one panel, ``stem-1.svg``, ``stem-2.svg``, ... for several), which the
        page shows. ``caption`` says in one line what to look at; ``alt`` describes each panel
        (one string per panel).
        """
        figs = list(figs) if isinstance(figs, (list, tuple)) else [figs]
        alts = _as_list(alt, len(figs), "alt texts")
        if not caption.strip():
            raise FigureError("expected a caption saying what to look at, got an empty one")
        path = self.out / filename
        stem = path.stem
        svgs, pngs = [], []
        for i, fig in enumerate(figs, 1):
            self._finish_panel(fig)
            svg = f"{stem}.svg" if len(figs) == 1 else f"{stem}-{i}.svg"
            _save_svg(fig, self.out / svg)
            pngs.append(_png_bytes(fig))
            svgs.append(svg)
            plt.close(fig)
        path.write_bytes(pngs[0] if len(pngs) == 1 else _side_by_side(pngs))
        self.metrics.setdefault("figures", []).append(filename)
        self.figures.append({"png": filename, "svgs": svgs, "caption": caption, "alt": alts})
        return path

    def slider(
        self, name: str, knob: str, values, figs, *, caption: str, alt, initial: int = 0
    ) -> None:
        """Save one frame (a one-panel figure) per knob value, for the page's slider.

        ``values`` are the knob's settings as the slider shows them (strings or numbers),
        ``figs`` the frames in the same order, ``alt`` one description per frame, and
        ``initial`` the frame shown first.
        """
        figs = list(figs)
        labels = [v if isinstance(v, str) else f"{v:g}" for v in values]
        alts = _as_list(alt, len(figs), "alt texts")
        if len(labels) != len(figs) or len(figs) < 2 or not 0 <= initial < len(figs):
            raise FigureError(
                f"slider {name!r}: expected one frame per value (at least 2) and an initial "
                f"index among them, got {len(figs)} frames, {len(labels)} values, initial "
                f"{initial}"
            )
        frames = []
        for i, fig in enumerate(figs):
            self._finish_panel(fig)
            frame = f"{name}-frame-{i}.svg"
            _save_svg(fig, self.out / frame)
            plt.close(fig)
            frames.append(frame)
        self.sliders.append(
            {
                "name": name,
                "knob": knob,
                "values": labels,
                "frames": frames,
                "caption": caption,
                "alt": alts,
                "initial": initial,
            }
        )

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
            "metrics": _jsonable(self.metrics),
            "figure_docs": self.figures,
            "figures_svg": [svg for f in self.figures for svg in f["svgs"]],
            "sliders": self.sliders,
            "seconds": round(time.perf_counter() - self._t0, 3),
            "command": f"python -m experiments.{self.name}" + (" --quick" if self.quick else ""),
            "machine": machine(),
        }
        (self.out / "metrics.json").write_text(json.dumps(doc, indent=2) + "\n")


def _jsonable(value):
    """Metrics with non-finite floats as None (``metrics.json`` stays strict JSON)."""
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
