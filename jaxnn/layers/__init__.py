"""Layers: ``init_<layer>(key, ...) -> params`` and ``<layer>(params, x)``, both pure functions."""

from jaxnn.layers.attention import (
    causal_mask,
    init_multi_head_attention,
    init_transformer_block,
    multi_head_attention,
    scaled_dot_product_attention,
    transformer_block,
)
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
from jaxnn.layers.embedding import (
    embedding,
    init_embedding,
    init_learned_positions,
    learned_positions,
    sinusoidal_positions,
)
from jaxnn.layers.norm import (
    batch_norm,
    init_batch_norm,
    init_batch_norm_state,
    init_layer_norm,
    layer_norm,
)
from jaxnn.layers.recurrent import (
    gru,
    gru_cell,
    init_gru,
    init_lstm,
    init_rnn,
    lstm,
    lstm_cell,
    rnn,
    rnn_cell,
)
from jaxnn.layers.residual import init_residual_block, residual_block

__all__ = ["init_dense", "dense"]
__all__ += ["init_conv2d", "conv2d", "init_conv1d", "conv1d"]
__all__ += ["max_pool2d", "avg_pool2d", "max_pool1d", "avg_pool1d", "global_avg_pool"]
__all__ += ["init_layer_norm", "layer_norm"]
__all__ += ["init_batch_norm", "init_batch_norm_state", "batch_norm"]
__all__ += ["dropout", "init_residual_block", "residual_block"]
__all__ += ["init_embedding", "embedding", "sinusoidal_positions"]
__all__ += ["init_learned_positions", "learned_positions"]
__all__ += ["causal_mask", "scaled_dot_product_attention"]
__all__ += ["init_multi_head_attention", "multi_head_attention"]
__all__ += ["init_transformer_block", "transformer_block"]
__all__ += ["init_rnn", "rnn", "rnn_cell", "init_gru", "gru", "gru_cell"]
__all__ += ["init_lstm", "lstm", "lstm_cell"]
