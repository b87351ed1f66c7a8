"""The hand-written pure-JAX twins of benchmarks.bench compute the jaxnn models."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from test_bench import _model

from benchmarks import bench, twins_jax


@pytest.mark.parametrize("name", ["mlp_b128", "cnn_b128", "transformer", "nanogpt", "gru_mnist1d"])
def test_hand_written_jax_forward_gives_the_jaxnn_logits(name):
    work, cfg, model = _model(name)
    params, state = model.init(jax.random.key(1))
    x, _ = bench._batches(work, cfg, 3)[0]
    want, _ = model.apply(params, jnp.asarray(x), state=state)
    got = twins_jax.forward(work.model, params, jnp.asarray(x), cfg)
    np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-5)
