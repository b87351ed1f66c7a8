"""Layers as pairs of pure functions: ``init_<layer>(key, ...) -> params`` and ``<layer>(params, x)``."""

from jaxnn.layers.dense import dense, init_dense

__all__ = ["init_dense", "dense"]
