"""The PyTorch eager twins of benchmarks.bench have the jaxnn models' parameters and logits."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from test_bench import _model

from benchmarks import bench


@pytest.mark.parametrize("name", ["mlp_b128", "cnn_b128", "transformer", "nanogpt", "gru_mnist1d"])
def test_torch_twin_has_the_jaxnn_parameter_count_and_logits(name):
    pytest.importorskip("torch")
    import torch

    from benchmarks import twins_torch

    work, cfg, model = _model(name)
    x, _ = bench._batches(work, cfg, 2)[0]
    with jax.enable_x64(True):
        to_f64 = lambda tree: jax.tree.map(lambda a: a.astype(jnp.float64), tree)
        params, state = jax.jit(lambda k: to_f64(model.init(k)))(jax.random.key(1))
        xin = x if work.task == "language_model" else x.astype(np.float64)
        want = np.asarray(model.apply(params, jnp.asarray(xin), state=state)[0])
    twin = twins_torch.build_torch_twin(model).double().eval()
    count = sum(math.prod(a.shape) for a in jax.tree.leaves(params))
    assert twins_torch.torch_param_count(twin) == count
    twins_torch.copy_jaxnn_params(twin, params)
    with torch.no_grad():
        got = twin(torch.as_tensor(xin)).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)
