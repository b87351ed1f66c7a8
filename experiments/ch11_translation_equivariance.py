"""Chapter 11: a convolution is translation-equivariant; pooling adds robustness to small shifts.

The book's claims: CNNs "reuse filters across positions" and encode "translation equivariance";
"pooling summarizes nearby activations, reducing spatial size and adding some robustness to small
shifts".

Measured here on standardized MNIST digits (``mnist5k``, 28x28; the background is then
non-zero, so the zero padding at the border differs from it) with a random He-initialized 5x5
convolution of 16 filters followed by ReLU, ``f(x) = relu(conv2d(x))``:

1. Equivariance: translating the image by ``(3, 2)`` pixels (zero fill) translates the feature
   map by the same ``(3, 2)``: ``f(shift(x)) = shift(f(x))`` exactly (asserted max difference
   below 1e-6) at every position at least ``shift + kernel // 2`` pixels from the border. Near
   the border the zero padding enters the window, and the two differ (asserted above 0.1): the
   equivariance is exact only away from borders.
2. Pooling: the relative change ``||g(f(shift(x))) - g(f(x))|| / ||g(f(x))||`` of the
   representation under a horizontal shift of ``s`` pixels, for ``g`` = no pooling and max
   pooling with windows 2, 4 and 7. Asserted for a 1-pixel shift: max pooling with window 2
   changes at most 0.85 times as much as no pooling, window 4 at most 0.85 times window 2.

``--quick`` uses 200 images and shifts up to 4 pixels (full: 2000 images, shifts up to 8); the
assertions are the same.

Figure: a digit, one feature map, the equivariance error map (zero inside, non-zero in the border
band), and the relative change against the shift for each pooling window. Slider: the digit
shifted by each amount, its feature map and its 4x4-pooled map.

Run: ``python -m experiments.ch11_translation_equivariance [--quick] [--out DIR]``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from matplotlib.patches import Rectangle

from experiments.harness import Experiment
from experiments.style import panels, show_image
from jaxnn.data import load, pipeline
from jaxnn.layers import conv2d, init_conv2d, max_pool2d

CLAIM = (
    "Chapter 11: a convolution reuses its filters at every position, so shifting the image "
    "shifts the feature map by the same amount (translation equivariance, exact away from the "
    "borders), and max pooling makes the representation change less under small shifts."
)

KERNEL, FILTERS, SHIFT = 5, 16, (3, 2)
WINDOWS = (1, 2, 4, 7)  # 1 = no pooling


def translate(x, dy: int, dx: int):
    """Move the content of images ``x`` (N, H, W, C) down by ``dy`` and right by ``dx`` pixels,
    filling the uncovered rows and columns with zeros."""
    h, w = x.shape[1:3]
    rolled = jnp.roll(x, (dy, dx), axis=(1, 2))
    keep = (jnp.arange(h)[:, None] >= dy) & (jnp.arange(w)[None, :] >= dx)  # (H, W)
    return rolled * keep[None, :, :, None]


def equivariance_error(f, x):
    """``|f(shift(x)) - shift(f(x))|`` compared where both are defined: (N, H - dy, W - dx)."""
    dy, dx = SHIFT
    moved_out = f(translate(x, dy, dx))[:, dy:, dx:]  # (N, H - dy, W - dx, F)
    out_moved = f(x)[:, : x.shape[1] - dy, : x.shape[2] - dx]  # the same positions, unshifted
    return jnp.max(jnp.abs(moved_out - out_moved), axis=-1)


def pooled_change(f, x, shifts):
    """Relative change of ``max_pool(f(x), window)`` under horizontal shifts: {window: [...]}."""
    features = f(x)  # (N, H, W, F)
    change = {w: [] for w in WINDOWS}
    for s in shifts:
        moved = f(translate(x, 0, s))
        for w in WINDOWS:
            a = features if w == 1 else max_pool2d(features, w)
            b = moved if w == 1 else max_pool2d(moved, w)
            change[w].append(float(jnp.linalg.norm(b - a) / jnp.linalg.norm(a)))
    return change


def draw(exp, image, feature_map, error_map, margin, shifts, change) -> None:
    figs, (ax, bx, cx, dx) = panels(4, size=(4.2, 3.6))
    show_image(ax, image, title="a digit (standardized)", cmap="gray")
    show_image(bx, feature_map, title="one feature map relu(conv x)", cmap="viridis")
    im = show_image(cx, error_map, title=f"error of shifting by {SHIFT} px", cmap="magma",
                    ticks=True)  # fmt: skip
    h, w = error_map.shape
    cx.add_patch(
        Rectangle(
            (margin - 0.5, margin - 0.5),
            w - 2 * margin,
            h - 2 * margin,
            fill=False,
            edgecolor="cyan",
            linestyle="--",
            label="asserted region (error < 1e-6)",
        )
    )
    cx.set_xlabel("x (pixels)")
    cx.set_ylabel("y (pixels)")
    cx.legend(loc="upper center", bbox_to_anchor=(0.5, -0.22))
    figs[2].colorbar(im, ax=cx, fraction=0.046, label="mean |f(shift x) - shift f(x)|")
    for window in WINDOWS:
        label = "no pooling" if window == 1 else f"max pool {window}x{window}"
        dx.plot(shifts, change[window], marker="o", label=label)
    dx.set_xticks(shifts)
    dx.set_xlabel("horizontal shift (pixels)")
    dx.set_ylabel("relative change of the features")
    dx.set_title("Pooling: robust to small shifts")
    dx.legend(loc="lower right")
    exp.save(
        figs,
        "equivariance_and_pooling.png",
        caption="Shift then convolve equals convolve then shift: the error map is zero inside "
        "the dashed box and non-zero only in the border band where padding enters; larger "
        "pooling windows change less when the image moves by a pixel or two.",
        alt=[
            "A standardized handwritten digit.",
            "One feature map of the digit: a random 5x5 filter followed by ReLU.",
            "Heat map of the equivariance error: black (zero) inside a dashed box, bright only "
            "along the borders.",
            "Relative change of the representation against the horizontal shift, for no pooling "
            "and max pooling of 2, 4 and 7: wider windows change less at small shifts.",
        ],
    )


def draw_shift_slider(exp, f, x, shifts, change) -> None:
    """One frame per shift: the shifted digit, its feature map and that map max-pooled 4x4."""
    frames, axes = panels(len(shifts), size=(4.2, 2.6))
    for s, ax in zip(shifts, axes, strict=True):
        moved = translate(x[:1], 0, s)
        fmap = np.asarray(f(moved))[0, :, :, 0]
        pooled = np.asarray(max_pool2d(f(moved), 4))[0, :, :, 0]
        pooled = np.kron(pooled, np.ones((4, 4)))  # back to 28x28 for the picture
        img = np.asarray(moved)[0, :, :, 0]
        gap = np.full((28, 2), np.nan)
        scale = lambda a: (a - np.nanmin(a)) / (np.nanmax(a) - np.nanmin(a) + 1e-9)  # noqa: E731
        show_image(ax, np.concatenate([scale(img), gap, scale(fmap), gap, scale(pooled)], 1),
                   cmap="viridis")  # fmt: skip
        ax.set_xticks([14, 44, 74], ["input", "feature map", "max pool 4x4"])
        ax.set_title(f"shift {s} px: change {change[1][s]:.0%} raw, {change[4][s]:.0%} pooled")
    exp.slider(
        "shift",
        "shift (pixels)",
        list(shifts),
        frames,
        caption="Move the digit: its feature map moves with it, pixel for pixel, while the "
        "4x4-pooled map holds still for a shift of a pixel or two.",
        alt=[
            f"The digit shifted {s} pixels right, its feature map and the map max-pooled 4x4."
            for s in shifts
        ],
    )


def main(argv=None) -> None:
    exp = Experiment("ch11_translation_equivariance", CLAIM, argv)
    n, max_shift = (200, 4) if exp.quick else (2000, 8)
    if exp.quick:
        exp.notes.append("--quick: 200 images, shifts up to 4 pixels; same assertions")
    splits, _ = pipeline.standardize(load("mnist5k", seed=0))
    x = jnp.asarray(splits.train.x[:n])  # (N, 28, 28, 1), standardized: the background is not 0
    params = init_conv2d(jax.random.PRNGKey(0), KERNEL, 1, FILTERS)

    def f(images):
        return jax.nn.relu(conv2d(params, images))  # (N, H, W, F)

    error = np.asarray(equivariance_error(f, x))  # (N, H - dy, W - dx)
    margin = max(SHIFT) + KERNEL // 2
    interior = error[:, margin:-margin, margin:-margin]
    shifts = list(range(0, max_shift + 1))
    change = pooled_change(f, x, shifts)
    exp.record(
        images=n,
        shift_pixels=list(SHIFT),
        interior_max_error=float(interior.max()),
        border_max_error=float(error.max()),
        **{f"change_1px_pool{w}": change[w][1] for w in WINDOWS},
    )
    draw(exp, np.asarray(x[0, :, :, 0]), np.asarray(f(x[:1]))[0, :, :, 0], error.mean(0), margin,
         shifts, change)  # fmt: skip
    draw_shift_slider(exp, f, x, shifts, change)

    exp.check(
        interior.max() < 1e-6,
        f"shift then convolve equals convolve then shift away from the borders "
        f"(max {interior.max():.1e})",
    )
    exp.check(error.max() > 0.1, "near the border (zero padding) the two differ")
    exp.check(
        change[2][1] <= 0.85 * change[1][1],
        "after a 1-pixel shift, 2x2 max pooling changes <= 0.85x as much as no pooling",
    )
    exp.check(
        change[4][1] <= 0.85 * change[2][1],
        "a 4x4 window changes <= 0.85x as much as a 2x2 window",
    )
    exp.finish()


if __name__ == "__main__":
    main()
