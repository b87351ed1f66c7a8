"""Train, validation and test splits — Chapter 9 and 13: how every data source carves them.

:func:`split` is the one routine every source goes through: the parts a source does not carry are
carved from its training data, first the test set (with the fixed :data:`TEST_SEED`, so that
``seed`` never moves it), then the validation set (with ``seed``), stratified for
classification. :func:`split_indices` draws one held-out part. Language-model text is the one
exception: its splits are contiguous ranges of one text (:func:`jaxnn.data.sources.text_splits`),
since windows cut from one range overlap their neighbours.
"""

from __future__ import annotations

import numpy as np

from jaxnn.data.containers import Dataset
from jaxnn.errors import UserError

__all__ = ["TEST_SEED", "check_seed", "split", "split_indices"]

# Held-out test sets of datasets without an official test split are carved with this fixed seed,
# so that changing ``seed`` (which moves the validation split) never moves the test set.
TEST_SEED = 20240909


def check_seed(seed) -> int:
    """``seed`` as an int, or a ValueError unless it is a non-negative integer."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"load: expected seed to be a non-negative integer, got {seed!r}")
    return int(seed)


def split_indices(
    y: np.ndarray, fraction: float, *, seed: int, stratify: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Split example indices into ``(kept, held_out)``, deterministically from ``seed``.

    Chapter 13: the validation set is held out of training. With ``stratify=True`` the held-out
    part keeps the class proportions: of ``round(fraction * N)`` held-out examples, class ``c``
    gets ``floor(fraction * N_c)`` plus one more for the classes with the largest remainders.

    Args:
      y: targets (N, ...); class labels when ``stratify`` is true.
      fraction: share of the examples to hold out, in (0, 1).
      seed: seed of the split (``numpy.random.Generator``; the global state is untouched).
      stratify: keep class proportions (classification) or split uniformly at random.

    Returns:
      ``(kept, held_out)``: sorted int64 index arrays that partition ``range(N)``.

    Raises:
      ValueError: if ``fraction`` is outside (0, 1) or either part would be empty.
    """
    if not 0.0 < float(fraction) < 1.0:
        raise ValueError(f"split_indices: expected fraction in (0, 1), got {fraction!r}")
    y = np.asarray(y)
    n = len(y)
    total = int(round(fraction * n))
    if total < 1 or total >= n:
        raise ValueError(
            f"split_indices: expected both parts non-empty, got {total} of {n} examples held out "
            f"for fraction {fraction}"
        )
    rng = np.random.default_rng(np.random.SeedSequence([check_seed(seed), 1]))
    held = _stratified(rng, y, fraction, total) if stratify else rng.permutation(n)[:total]
    mask = np.zeros(n, bool)
    mask[held] = True
    return np.flatnonzero(~mask), np.flatnonzero(mask)


def _stratified(rng, y: np.ndarray, fraction: float, total: int) -> np.ndarray:
    """``total`` held-out indices drawn per class, by largest remainder of ``fraction * N_c``."""
    classes, counts = np.unique(y, return_counts=True)
    exact = fraction * counts
    take = np.floor(exact).astype(np.int64)
    order = np.argsort(-(exact - take), kind="stable")  # largest remainders first
    take[order[: total - int(take.sum())]] += 1
    return np.concatenate(
        [rng.permutation(np.flatnonzero(y == c))[:k] for c, k in zip(classes, take, strict=True)]
    )


def split(
    where: str,
    data: Dataset,
    *,
    seed: int,
    val_fraction: float,
    test_fraction: float | None = None,
    stratify: bool,
    val: Dataset | None = None,
    test: Dataset | None = None,
    test_seed: int = TEST_SEED,
) -> tuple[Dataset, Dataset, Dataset]:
    """Train, validation and test datasets, carving from ``data`` the parts not given.

    Chapter 9: a test set missing from the source is held out of ``data`` first, a share
    ``test_fraction`` drawn with ``test_seed`` (the fixed :data:`TEST_SEED`: ``seed`` never moves
    it; synthetic data, generated from ``seed`` itself, passes ``seed + 1``). A missing
    validation set is then held out of what remains, a share ``val_fraction`` drawn with
    ``seed``. Both draws are stratified by class when ``stratify`` (classification). A source
    that carries its own validation or test set passes it as ``val`` or ``test``.

    Args:
      where: the source, to start error messages with (``"csv:data.csv"``, ``"load('digits')"``).
      data: the training data, or all the data when the source carries no split.
      seed: seed of the validation split.
      val_fraction: share of the remaining training data held out for validation.
      test_fraction: share of ``data`` held out for testing when ``test`` is None.
      stratify: keep class proportions in each held-out part.
      val, test: the source's own validation and test sets, if it has them.
      test_seed: seed of the test split.

    Returns:
      ``(train, val, test)`` datasets.

    Raises:
      UserError: if a part would be empty; the message names ``where`` and the part.
    """
    if test is None:
        data, test = _carve(where, "test", data, test_fraction, test_seed, stratify)
    if val is None:
        data, val = _carve(where, "validation", data, val_fraction, seed, stratify)
    return data, val, test


def _carve(where, part, data: Dataset, fraction, seed, stratify) -> tuple[Dataset, Dataset]:
    try:
        kept, held = split_indices(data.y, fraction, seed=seed, stratify=stratify)
    except ValueError as e:
        raise UserError(
            f"{where}: cannot carve a {part} split from {len(data)} examples: {e}"
        ) from None
    return data.take(kept), data.take(held)
