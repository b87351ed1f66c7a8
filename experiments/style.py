"""The one figure style of the experiments, and the mark on every ``--quick`` figure.

:func:`apply_style` sets matplotlib's ``rcParams`` once (the harness calls it on import, so every
experiment gets it): a white background, a light grid, no top/right spines, a colour-blind-safe
colour cycle, and no text smaller than :data:`MIN_FONT_PT`.

Figures are drawn as *panels* of :data:`PANEL` inches (:func:`panels`), one axes each, so that the
page can set them side by side on a wide screen and stack them on a phone, and every label stays
at 10 CSS pixels or more either way: a panel of 4.2 in is about 302 SVG units wide, so its 10 pt
text reads at 10 px when the panel is shown 302 pixels wide (three fit side by side in the page's
column on a 1280-pixel screen; a phone shows one at a time, about 340 pixels wide).

One meaning per line style, in every figure:

- train solid, validation dashed (:func:`train_val`), test a star marker; colour names the run
  (a model, an optimizer, a learning rate), or :data:`TRAIN` and :data:`VAL` for a single run;
- a chance level or reference dotted gray (:func:`baseline_line`);
- a threshold that a check asserts dash-dotted black (:func:`threshold_line`).

:func:`show_image` draws an image without a grid over it; :func:`mark_quick` stamps a red banner
on a figure made by a ``--quick`` run, so a reduced-size result is never mistaken for the full one.
"""

from __future__ import annotations

import re

import matplotlib as mpl
from matplotlib.lines import Line2D
from matplotlib.ticker import LogFormatterSciNotation

__all__ = [
    "PALETTE",
    "TRAIN",
    "VAL",
    "TEST",
    "BASELINE",
    "THRESHOLD",
    "PANEL",
    "MAX_PANEL_IN",
    "MIN_FONT_PT",
    "QUICK_BANNER",
    "apply_style",
    "mark_quick",
    "panels",
    "baseline_line",
    "threshold_line",
    "train_val",
    "split_legend",
    "legend_below",
    "show_image",
    "plain_log_ticks",
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
THRESHOLD = "#222222"
PANEL = (4.2, 3.2)  # inches: one axes
MAX_PANEL_IN = 4.7  # a saved panel's widest: 338 SVG units, 10 px text on a 340-px phone column
MIN_FONT_PT = 10.0
QUICK_BANNER = "QUICK RUN \u00b7 reduced sizes, not the full result"

_RC = {
    "figure.facecolor": "white",
    "figure.dpi": 100,
    "figure.figsize": PANEL,
    "savefig.dpi": 110,
    "savefig.facecolor": "white",
    "font.size": 10,
    "axes.titlesize": 11,
    "axes.titleweight": "bold",
    "axes.labelsize": 10,
    "xtick.labelsize": 10,
    "ytick.labelsize": 10,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "grid.linestyle": "-",
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.prop_cycle": mpl.cycler(color=PALETTE),
    "legend.frameon": True,
    "legend.framealpha": 0.85,
    "legend.facecolor": "white",
    "legend.edgecolor": "#dddddd",
    "legend.fontsize": 10,
    "legend.borderpad": 0.3,
    "legend.handlelength": 1.8,
    "legend.labelspacing": 0.3,
    "lines.linewidth": 1.8,
    "lines.markersize": 5,
    "image.cmap": "viridis",
    "axes.formatter.min_exponent": 3,  # 0.01 to 100 as plain numbers on log axes
    "svg.fonttype": "none",
    "svg.hashsalt": "jaxnn-book",
}


def apply_style() -> None:
    """Set the shared figure style in matplotlib's global ``rcParams``."""
    mpl.rcParams.update(_RC)


def panels(n: int, size=PANEL, **subplot_kw):
    """``n`` one-axes figures of ``size`` inches: ``(figs, axes)``."""
    import matplotlib.pyplot as plt

    pairs = [plt.subplots(figsize=size, **subplot_kw) for _ in range(n)]
    return [f for f, _ in pairs], [a for _, a in pairs]


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
        bbox={"boxstyle": "square,pad=0.3", "facecolor": "#C0392B", "edgecolor": "none"},
    )


def baseline_line(ax, y: float, label: str, *, horizontal: bool = True) -> None:
    """Draw a chance or baseline level as a dotted gray line with a legend ``label``."""
    draw = ax.axhline if horizontal else ax.axvline
    draw(y, color=BASELINE, linestyle=":", linewidth=1.5, label=label)


def threshold_line(ax, y: float, label: str, *, horizontal: bool = True) -> None:
    """Draw a threshold that a check asserts as a dash-dotted black line with ``label``."""
    draw = ax.axhline if horizontal else ax.axvline
    draw(y, color=THRESHOLD, linestyle="-.", linewidth=1.2, label=label)


def train_val(ax, x, train, val, *, color=None, label=None, marker=None, train_label=None):
    """Train solid and validation dashed, in one colour; ``label`` names the run (the legend
    shows it once, on the train line) or, when None, the lines read "train" and "validation"
    in :data:`TRAIN` and :data:`VAL`."""
    if label is None:
        ax.plot(x, train, color=color or TRAIN, marker=marker, label=train_label or "train")
        ax.plot(x, val, color=color or VAL, ls="--", marker=marker, label="validation")
        return
    (line,) = ax.plot(x, train, color=color, marker=marker, label=label)
    ax.plot(x, val, color=line.get_color(), ls="--", marker=marker)


def split_legend(ax, *, loc="best", title=None, extra=(), below=False, **kw):
    """A legend of the runs, plus two gray entries saying which line style is which split
    (under the axes with ``below``)."""
    handles, labels = ax.get_legend_handles_labels()
    proxies = [
        Line2D([], [], color=BASELINE, ls="-", label="train (solid)"),
        Line2D([], [], color=BASELINE, ls="--", label="validation (dashed)"),
        *extra,
    ]
    handles, labels = handles + proxies, labels + [p.get_label() for p in proxies]
    if below:
        return legend_below(ax, handles, labels, title=title, **kw)
    return ax.legend(handles, labels, loc=loc, title=title, **kw)


def legend_below(ax, handles=None, labels=None, *, ncols: int = 1, **kw):
    """The legend under the axes (a panel grows taller, never wider, so it still fits a
    phone): for a legend too long to sit over the data."""
    if handles is None:
        handles, labels = ax.get_legend_handles_labels()
    return ax.legend(
        handles, labels, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncols=ncols, **kw
    )


def show_image(ax, image, *, title=None, ticks=False, **imshow_kw):
    """``imshow`` without a grid over the image (and without ticks unless ``ticks``)."""
    im = ax.imshow(image, **imshow_kw)
    ax.grid(False)
    if not ticks:
        ax.set_xticks([])
        ax.set_yticks([])
    if title:
        ax.set_title(title)
    return im


_SUPERSCRIPT = str.maketrans(
    "-0123456789", "\u207b\u2070\u00b9\u00b2\u00b3\u2074\u2075\u2076\u2077\u2078\u2079"
)


class PlainLogFormatter(LogFormatterSciNotation):
    """Log-axis tick labels as plain text (``10\u00b3``, ``2\u00d710\u207b\u00b9``, ``0.01``):
    matplotlib's default writes exponents with mathtext, whose superscripts come out at 70% of the
    font size, under 10 px on the page."""

    def __call__(self, x, pos=None):
        label = super().__call__(x, pos)
        label = label.replace("$\\mathdefault{", "").replace("}$", "").replace("\\times", "\u00d7")
        return re.sub(r"\^\{(-?\d+)\}", lambda m: m.group(1).translate(_SUPERSCRIPT), label)


def plain_log_ticks(fig) -> None:
    """Swap the log and symlog axes' tick formatters of ``fig`` for :class:`PlainLogFormatter`."""
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            if axis.get_scale() not in ("log", "symlog"):
                continue
            for get, put in ((axis.get_major_formatter, axis.set_major_formatter),
                             (axis.get_minor_formatter, axis.set_minor_formatter)):  # fmt: skip
                old = get()
                if type(old) is LogFormatterSciNotation:
                    put(PlainLogFormatter(base=old._base, labelOnlyBase=old.labelOnlyBase,
                                          minor_thresholds=old.minor_thresholds,
                                          linthresh=old._linthresh))  # fmt: skip
