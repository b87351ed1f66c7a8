"""The checks a train command makes before any work: the memory a run needs, from shapes."""

import jax
import numpy as np
import pytest

from jaxnn import models
from jaxnn.app import upfront
from jaxnn.train import FitConfig


def _model():
    return models.build("mlp", input_dim=10, hidden=(16,), num_classes=3)


def test_training_bytes_count_params_twice_and_adams_two_moments():
    model = _model()
    params, _ = jax.eval_shape(model.init, jax.random.key(0))
    n = sum(int(np.prod(a.shape)) for a in jax.tree.leaves(params))  # 10*16+16 + 16*3+3 = 227
    sizes = upfront.training_bytes(model, FitConfig().optimization)
    assert sizes["params"] == 4 * n and sizes["model_state"] == 0
    assert 2 * 4 * n <= sizes["optimizer"] <= 2 * 4 * n + 64  # mu, nu and a step count
    assert sizes["total"] == 2 * sizes["params"] + sizes["optimizer"]


@pytest.mark.parametrize(
    "settings",
    [
        {"schedule": "cosine", "min_lr": 1e-4},
        {"schedule": "warmup_cosine", "warmup_steps": 10, "min_lr": 1e-4, "decay_steps": 100},
    ],
)
def test_training_bytes_take_any_schedule_a_run_may_have(settings):
    plain = upfront.training_bytes(_model(), FitConfig().optimization)
    assert upfront.training_bytes(_model(), FitConfig(**settings).optimization) == plain
