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

Figure: one feature map, the equivariance error map (zero inside, non-zero in the border band),
and the relative change against the shift for each pooling window.

Run: ``python -m experiments.ch11_translation_equivariance [--quick] [--out DIR]``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from experiments.harness import Experiment, plt
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


def draw(exp, feature_map, error_map, margin, shifts, change) -> None:
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.3))
    axes[0].imshow(feature_map, cmap="viridis")
    axes[0].set_title("one feature map relu(conv(x)) of a digit")
    im = axes[1].imshow(error_map, cmap="magma")
    h, w = error_map.shape
    axes[1].add_patch(
        plt.Rectangle(
            (margin - 0.5, margin - 0.5),
            w - 2 * margin,
            h - 2 * margin,
            fill=False,
            edgecolor="cyan",
            linestyle="--",
            label="asserted region (error 0)",
        )
    )
    axes[1].set_title(f"mean |f(shift x) - shift f(x)|, shift {SHIFT} px")
    axes[1].legend(loc="center", fontsize=8)
    fig.colorbar(im, ax=axes[1], fraction=0.046)
    for ax in axes[:2]:
        ax.set_xlabel("x (pixels)")
        ax.set_ylabel("y (pixels)")
    for window in WINDOWS:
        label = "no pooling" if window == 1 else f"max pool {window}x{window}"
        axes[2].plot(shifts, change[window], marker="o", label=label)
    axes[2].set_xticks(shifts)
    axes[2].set_xlabel("horizontal shift of the image (pixels)")
    axes[2].set_ylabel("relative change of the representation")
    axes[2].set_title("pooling: robustness to small shifts")
    axes[2].grid(alpha=0.3)
    axes[2].legend()
    exp.save(fig, "equivariance_and_pooling.png")


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
    draw(exp, np.asarray(f(x[:1]))[0, :, :, 0], error.mean(0), margin, shifts, change)

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
