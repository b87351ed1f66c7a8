"""Data pipelines — Chapter 9: datasets, splits, normalization, batches, augmentation, tokens.

``load(name, seed=...)`` returns :class:`Splits` (train, val, a sealed test, info) for every source
in one table (:data:`jaxnn.data.datasets.SOURCES`), each split by one routine
(:func:`jaxnn.data.splits.split`); the modules
:mod:`~jaxnn.data.pipeline` (standardize, batches, prefetch), :mod:`~jaxnn.data.augment`,
:mod:`~jaxnn.data.text` (tokenizers), :mod:`~jaxnn.data.streaming` (packs larger than
memory) and :mod:`~jaxnn.data.corrupt` (fault injection, Chapter 14) take it from there.
"""

from jaxnn.data import augment, corrupt, pipeline, streaming, text
from jaxnn.data.containers import TASKS, Dataset, DatasetInfo, SealedDataset, Splits
from jaxnn.data.datasets import NAMES, load
from jaxnn.data.splits import split_indices

__all__ = [
    "NAMES",
    "TASKS",
    "Dataset",
    "DatasetInfo",
    "SealedDataset",
    "Splits",
    "load",
    "split_indices",
    "augment",
    "corrupt",
    "pipeline",
    "streaming",
    "text",
]
