"""The Flax nnx twins of benchmarks.bench train."""

import numpy as np
import pytest
from test_bench import _model

from benchmarks import bench


def test_flax_twin_of_the_mlp_takes_a_finite_step():
    pytest.importorskip("flax")
    from benchmarks import twins_flax

    work, cfg, _ = _model("mlp_b128")
    step, state = twins_flax.make_step(work.model, cfg)
    x, y = bench._batches(work, cfg, 2)[0]
    _, loss = step(state, x, y)
    assert np.isfinite(float(loss))


@pytest.mark.slow
def test_flax_twin_trains_each_quick_workload_to_a_finite_loss():
    pytest.importorskip("flax")
    from benchmarks import twins_flax

    for name in ("mlp_b128", "cnn_b128", "transformer", "gru_mnist1d"):
        work, cfg, _ = _model(name)
        step, state = twins_flax.make_step(work.model, cfg)
        x, y = bench._batches(work, cfg, 2)[0]
        _, loss = step(state, x, y)
        assert np.isfinite(float(loss)), name
