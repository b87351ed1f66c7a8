"""The one figure style of the experiments, and the mark on every ``--quick`` figure.

:func:`apply_style` sets matplotlib's ``rcParams`` once (the harness calls it on import, so every
experiment gets it): a white background, light grid, no top/right spines, readable font sizes and
a colour-blind-safe colour cycle. The named colours :data:`TRAIN`, :data:`VAL`, :data:`TEST` and
:data:`BASELINE` keep the same meaning in every figure (train solid, validation dashed, chance or
baseline dotted gray). :func:`mark_quick` stamps a red banner on a figure made by a ``--quick``
run, so a reduced-size result is never mistaken for the full one.
"""

from __future__ import annotations

import matplotlib as mpl

__all__ = [
    "PALETTE",
    "TRAIN",
    "VAL",
    "TEST",
    "BASELINE",
    "QUICK_BANNER",
    "apply_style",
    "mark_quick",
    "baseline_line",
]

# Okabe-Ito, a palette that stays distinct for the common colour-vision deficiencies.
PALETTE = (
    "#0072B2",  # blue
    "#D55E00",  # vermillion
    "#009E73",  # green
    "#CC79A7",  # purple
    "#E69F00",  # orange
    "#56B4E9",  # sky blue
    "#F0E442",  # yellow
    "#000000",  # black
)
TRAIN = PALETTE[0]
VAL = PALETTE[1]
TEST = PALETTE[2]
BASELINE = "#7f7f7f"
QUICK_BANNER = "QUICK RUN \u2014 reduced sizes; numbers are not the full experiment's"

_RC = {
    "figure.facecolor": "white",
    "figure.dpi": 100,
    "savefig.dpi": 110,
    "savefig.facecolor": "white",
    "font.size": 10,
    "axes.titlesize": 11,
    "axes.titleweight": "bold",
    "axes.labelsize": 10,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "grid.linestyle": "-",
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.prop_cycle": mpl.cycler(color=PALETTE),
    "legend.frameon": False,
    "legend.fontsize": 9,
    "lines.linewidth": 1.8,
    "lines.markersize": 5,
    "svg.fonttype": "none",
}


def apply_style() -> None:
    """Set the shared figure style in matplotlib's global ``rcParams``."""
    mpl.rcParams.update(_RC)


def mark_quick(fig) -> None:
    """Stamp the ``--quick`` banner across the top of ``fig`` (above every axes)."""
    fig.text(
        0.5,
        1.0,
        QUICK_BANNER,
        ha="center",
        va="bottom",
        fontsize=10,
        fontweight="bold",
        color="white",
        bbox={"boxstyle": "square,pad=0.35", "facecolor": "#C0392B", "edgecolor": "none"},
    )


def baseline_line(ax, y: float, label: str, *, horizontal: bool = True) -> None:
    """Draw a chance or baseline level as a dotted gray line with a legend ``label``."""
    draw = ax.axhline if horizontal else ax.axvline
    draw(y, color=BASELINE, linestyle=":", linewidth=1.5, label=label)
