"""Chapter 11: a CNN extracts features in a hierarchy: later layers see more and know more.

The book's claim: "CNNs encode useful inductive biases: locality, translation equivariance, and
hierarchical feature extraction. Early layers often detect edges and colors, middle layers detect
motifs, and later layers detect object parts or semantic patterns."

Measured here on MNIST digits (``mnist5k``, 28x28) with ``jaxnn.models.cnn`` (three 5x5
convolutions of 8, 16 and 32 filters, each followed by ReLU and 2x2 max pooling, then a dense
head) trained by ``fit``:

1. **Each layer sees a larger region.** The receptive field of a unit in the middle of each
   layer's feature map, measured as the extent of the input pixels its value depends on (the
   non-zero support of its gradient with respect to the image, over 16 images), equals what the
   architecture allows (its index interval walked back through each pooling window and each
   5x5 convolution, clipped to the image) and grows at every layer; a first-layer unit sees a
   6x6 patch (a 5x5 filter at two pooled positions), a local edge or stroke at most.
2. **Later layers carry more class information.** A linear probe (scikit-learn's logistic
   regression) reads the digit from each layer's features, all cut to the same 128 numbers by
   one fixed random projection, trained on training images and scored on validation images.
   Asserted: the probe accuracy rises at every layer, from the pixels to the last convolution,
   and the last layer's is at least 3 points above the pixels'.

``--quick`` trains 3 epochs on 2,000 images and probes 1,000 (full: 8 epochs on all 3,500, probes
on all); the assertions are the same.

Figure: the first layer's learned filters; receptive field per layer, measured and computed;
probe accuracy per layer; for one unit of each layer, the input region it depends on.

Run: ``python -m experiments.ch11_filter_hierarchy [--quick] [--out DIR]``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from experiments.harness import Experiment, fit_config
from experiments.style import BASELINE, PALETTE, panels, show_image
from jaxnn.data import load, pipeline
from jaxnn.layers import conv2d, max_pool2d
from jaxnn.models import build, get
from jaxnn.train import fit

CLAIM = (
    "Chapter 11: a CNN extracts features in a hierarchy: each layer's units see a larger region "
    "of the image than the last, and a linear read-out of the digit improves from the pixels "
    "through every layer."
)
CHANNELS, KERNEL, POOL = (8, 16, 32), 5, 2
PROBE_DIM = 128


def features(params, x, upto: int):
    """The feature map after conv layer ``upto`` (1-based; 0 is the image), as cnn.apply
    computes it: conv, ReLU, 2x2 max pooling."""
    h = x
    for i in range(upto):
        h = max_pool2d(jax.nn.relu(conv2d(params[f"conv_{i}"], h)), POOL)
    return h  # (B, H_k, W_k, C_k)


def centre(size: int, layer: int) -> int:
    """The middle index of a feature map of layer ``layer`` on an image of side ``size``."""
    for _ in range(layer):
        size //= POOL
    return size // 2


def computed_extent(size: int, layer: int) -> int:
    """The pixels that the centre unit of ``layer`` can depend on, from the architecture: walk
    its index interval back through each 2x2 pool (index i covers 2i, 2i + 1) and each "SAME" 5x5
    convolution (index j covers j - 2 ... j + 2), then clip to the image."""
    lo = hi = centre(size, layer)
    for _ in range(layer):
        lo, hi = POOL * lo, POOL * hi + POOL - 1
        lo, hi = lo - KERNEL // 2, hi + KERNEL // 2
    return min(hi, size - 1) - max(lo, 0) + 1


def measured_field(params, images, layer: int) -> tuple[int, np.ndarray]:
    """Extent (pixels, the larger side) of the input region that the centre unit of ``layer``
    depends on, over ``images``: the support of its gradient; and that region as a mask."""
    c = centre(images.shape[1], layer)

    def unit(x):
        return jnp.sum(features(params, x[None], layer)[0, c, c, :])

    grads = jax.vmap(jax.grad(unit))(images)  # (N, 28, 28, 1)
    mask = np.asarray(jnp.abs(grads).max(axis=(0, 3)) > 0)  # (28, 28)
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    return int(max(np.ptp(rows) + 1, np.ptp(cols) + 1)), mask


def probe_accuracy(params, train, val, layer: int, seed: int = 0) -> float:
    """Logistic regression on a fixed random projection of layer ``layer``'s features."""
    from sklearn.linear_model import LogisticRegression

    def project(x):
        f = np.asarray(features(params, jnp.asarray(x), layer)).reshape(len(x), -1)
        rng = np.random.default_rng(seed + layer)
        proj = rng.standard_normal((f.shape[1], PROBE_DIM)) / np.sqrt(f.shape[1])
        return f @ proj

    a, b = project(train.x), project(val.x)
    mean, std = a.mean(0), a.std(0) + 1e-6
    clf = LogisticRegression(max_iter=2000).fit((a - mean) / std, train.y)
    return float(clf.score((b - mean) / std, val.y))


def draw(exp, filters, fields, computed, probes, masks, image):
    figs, (ax, bx, cx, dx) = panels(4, size=(4.2, 3.6))
    k = filters.shape[-1]
    tiles = np.full((2 * (KERNEL + 1) - 1, (k // 2) * (KERNEL + 1) - 1), np.nan)
    for i in range(k):
        r, c = divmod(i, k // 2)
        w = filters[:, :, 0, i]
        tiles[r * (KERNEL + 1): r * (KERNEL + 1) + KERNEL,
              c * (KERNEL + 1): c * (KERNEL + 1) + KERNEL] = w / np.abs(w).max()  # fmt: skip
    show_image(ax, tiles, cmap="RdBu_r", vmin=-1, vmax=1,
               title=f"First layer's {k} learned 5x5 filters")  # fmt: skip
    layers = np.arange(1, len(CHANNELS) + 1)
    bx.plot(layers, fields, marker="o", ms=9, color=PALETTE[0], label="measured (gradient)")
    bx.plot(layers, computed, marker="x", ms=9, ls="--", color=PALETTE[1],
            label="computed from the layers")  # fmt: skip
    bx.set_xticks(layers)
    bx.set_xlabel("convolution layer")
    bx.set_ylabel("receptive field (pixels)")
    bx.set_title("Each layer sees more")
    bx.legend(loc="upper left")
    names = ["pixels"] + [f"conv {i}" for i in layers]
    bars = cx.bar(names, probes, color=[BASELINE] + [PALETTE[2]] * len(CHANNELS))
    cx.bar_label(bars, fmt="%.3f")
    cx.set_ylim(min(probes) - 0.1, 1.02)
    cx.set_ylabel(f"linear probe accuracy ({PROBE_DIM} features)")
    cx.set_title("Each layer knows more")
    view = np.stack([image] * 3, -1)
    view = (view - view.min()) / (view.max() - view.min())
    for mask, color in zip(masks[::-1], ("#56B4E9", "#E69F00", "#D55E00"), strict=False):
        edge = mask & ~np.pad(mask, 1)[2:, 1:-1] | mask & ~np.pad(mask, 1)[:-2, 1:-1]
        edge |= mask & ~np.pad(mask, 1)[1:-1, 2:] | mask & ~np.pad(mask, 1)[1:-1, :-2]
        view[edge] = [int(color[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    show_image(dx, view, title="Regions of one unit per layer")
    dx.set_xlabel("red: conv 1, orange: conv 2, blue: conv 3")
    exp.save(
        figs,
        "hierarchy.png",
        caption="The first layer learns small stroke and edge detectors; a unit's region of the "
        "image grows layer by layer, and the digit becomes easier to read off linearly at every "
        "layer.",
        alt=[
            "Grid of the first layer's eight 5x5 filters in red and blue: oriented strokes and "
            "edges.",
            "Receptive field in pixels against the layer: measured and computed sizes coincide "
            "and grow with depth.",
            "Bars of linear-probe accuracy from the pixels and from each convolution layer, "
            "rising layer by layer.",
            "A digit with the outlines of the regions that one unit of each layer depends on, "
            "nested and growing.",
        ],
    )


def main(argv=None) -> None:
    exp = Experiment("ch11_filter_hierarchy", CLAIM, argv)
    splits, _ = pipeline.standardize(load("mnist5k", seed=0))
    if exp.quick:
        epochs, n_train, n_probe = 3, 2000, 1000
        exp.notes.append("--quick: 3 epochs on 2,000 images; probes on 1,000")
    else:
        epochs, n_train, n_probe = 8, len(splits.train), len(splits.train)
    order = np.random.default_rng(0).permutation(len(splits.train))  # the split is sorted by digit
    data = splits.replace(train=splits.train.take(order[:n_train]))
    cfg = get("cnn").config_for(data.info, channels=CHANNELS, kernel_size=KERNEL, hidden=(64,))
    result = fit(build("cnn", cfg), data, fit_config(epochs=epochs, batch_size=64, lr=3e-3,
                 progress=False, checkpoint=False), verbose=False)  # fmt: skip
    params = result.best_params
    images = jnp.asarray(splits.train.x[:16])
    measured = [measured_field(params, images, k) for k in range(1, len(CHANNELS) + 1)]
    fields, masks = [m[0] for m in measured], [m[1] for m in measured]
    computed = [computed_extent(images.shape[1], k) for k in range(1, len(CHANNELS) + 1)]
    probe_train = splits.train.take(order[:n_probe])
    probes = [probe_accuracy(params, probe_train, splits.val, k)
              for k in range(len(CHANNELS) + 1)]  # fmt: skip
    exp.record(
        epochs=epochs,
        train_images=n_train,
        val_accuracy=result.summary["best_val_accuracy"],
        receptive_field_measured=fields,
        receptive_field_computed=computed,
        probe_accuracy_pixels_then_layers=probes,
        probe_features=PROBE_DIM,
    )
    draw(exp, np.asarray(params["conv_0"]["w"]), fields, computed, probes, masks,
         np.asarray(splits.train.x[0, :, :, 0]))  # fmt: skip

    exp.check(
        fields == computed and all(b > a for a, b in zip(fields, fields[1:], strict=False)),
        f"the receptive field grows at every layer, {fields} pixels, as the layers compute it "
        f"({computed})",
    )
    exp.check(
        all(b > a for a, b in zip(probes, probes[1:], strict=False))
        and probes[-1] >= probes[0] + 0.03,
        "the linear probe reads the digit better at every layer: "
        + ", ".join(f"{p:.3f}" for p in probes)
        + " (pixels first; last >= pixels + 3 points)",
    )
    exp.finish()


if __name__ == "__main__":
    main()
