"""Layers as pairs of pure functions: ``init_<layer>(key, ...) -> params`` and ``<layer>(params, x)``."""

from jaxnn.layers.conv import (
    avg_pool1d,
    avg_pool2d,
    conv1d,
    conv2d,
    global_avg_pool,
    init_conv1d,
    init_conv2d,
    max_pool1d,
    max_pool2d,
)
from jaxnn.layers.dense import dense, init_dense
from jaxnn.layers.dropout import dropout
from jaxnn.layers.norm import (
    batch_norm,
    init_batch_norm,
    init_batch_norm_state,
    init_layer_norm,
    layer_norm,
)
from jaxnn.layers.residual import init_residual_block, residual_block

__all__ = ["init_dense", "dense"]
__all__ += ["init_conv2d", "conv2d", "init_conv1d", "conv1d"]
__all__ += ["max_pool2d", "avg_pool2d", "max_pool1d", "avg_pool1d", "global_avg_pool"]
__all__ += ["init_layer_norm", "layer_norm"]
__all__ += ["init_batch_norm", "init_batch_norm_state", "batch_norm"]
__all__ += ["dropout", "init_residual_block", "residual_block"]
