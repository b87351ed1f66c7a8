"""Small datasets of the kind a user brings, written by the tests themselves: a folder of 216
generated 32x32 shape images in 3 classes and a 178-row, 13-feature, 3-class wine table."""

from pathlib import Path

import numpy as np

SHAPES = ("circle", "square", "triangle")


def _shape_mask(kind: str, size: int, rng) -> np.ndarray:
    """A boolean (size, size) mask of one shape at a random position and scale."""
    r = rng.uniform(5.0, 11.0)  # half-width in pixels
    cy, cx = rng.uniform(r + 1, size - r - 1, 2)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64) + 0.5
    dy, dx = yy - cy, xx - cx
    if kind == "circle":
        return dy**2 + dx**2 <= r**2
    if kind == "square":
        return (np.abs(dy) <= r * 0.85) & (np.abs(dx) <= r * 0.85)
    # an upward triangle: below the apex, above the base, inside the two slanted sides
    top, base = cy - r, cy + r * 0.8
    half = (yy - top) / (base - top) * r
    return (yy >= top) & (yy <= base) & (np.abs(dx) <= half)


def write_shapes(root, per_class: int = 72, size: int = 32, seed: int = 0) -> Path:
    """Write ``per_class`` PNG images of each shape into ``root/<shape>/``; returns ``root``.

    Random position, size, shape colour, background colour and pixel noise per image.
    """
    from PIL import Image

    rng = np.random.default_rng(seed)
    root = Path(root)
    for kind in SHAPES:
        (root / kind).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            mask = _shape_mask(kind, size, rng)
            background = rng.uniform(0, 110, 3)
            colour = rng.uniform(140, 255, 3)
            img = np.where(mask[..., None], colour, background)
            img = img + rng.normal(0, 18, img.shape)
            img = np.clip(img, 0, 255).astype(np.uint8)
            Image.fromarray(img, "RGB").save(root / kind / f"{i:03d}.png")
    return root


def wine_table(seed: int = 0):
    """``(x (178, 13), y (178,))``: the UCI wine table when scikit-learn is installed (it ships
    the file), else a wine-like table of class-dependent Gaussian features of the same shape."""
    try:
        from sklearn.datasets import load_wine
    except ImportError:
        rng = np.random.default_rng(seed)
        counts = (59, 71, 48)  # the wine table's classes
        centres = rng.normal(0.0, 1.0, (3, 13))
        scales = rng.uniform(0.5, 3.0, 13)
        offsets = rng.uniform(1.0, 100.0, 13)
        x = np.concatenate([rng.normal(centres[c], 1.0, (n, 13)) for c, n in enumerate(counts)])
        y = np.repeat(np.arange(3), counts)
        return x * scales + offsets, y
    wine = load_wine()
    return wine.data, wine.target


def write_wine(path, seed: int = 0, rows: int | None = None) -> Path:
    """Write the wine table (every ``178 / rows``-th row when ``rows`` is given) as a CSV with a
    header row, the class (``cultivar``) last."""
    x, y = wine_table(seed)
    if rows is not None:
        keep = np.linspace(0, len(x) - 1, rows).round().astype(int)
        x, y = x[keep], y[keep]
    path = Path(path)
    names = [f"f{i}" for i in range(x.shape[1])]
    rows = [",".join([*names, "cultivar"])]
    rows += [
        ",".join([*(f"{v:.6g}" for v in row), f"c{label}"]) for row, label in zip(x, y, strict=True)
    ]
    path.write_text("\n".join(rows) + "\n")
    return path
