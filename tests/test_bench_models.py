"""Tests for scripts/bench_models.py: the PyTorch twins are the jaxnn models (same parameter count,
same logits from the same weights) and the ``--quick`` run completes with a finite ratio.

PyTorch is an optional extra (``bench``): without it every test here is skipped. The skip happens
in a fixture, not at import, so the gradient-check registry can import this module either way.
"""

import dataclasses
import importlib.util
import json
import math
import pathlib
import re
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnn import models
from jaxnn.models import cnn, mlp, transformer

SCRIPT = pathlib.Path(__file__).resolve().parents[1] / "scripts" / "bench_models.py"
RNG = np.random.default_rng(0)

# Non-default configurations, to check that each twin follows its Config and not only the defaults.
VARIANTS = {
    "mlp-tanh-2-hidden": ("mlp", mlp.Config(input_dim=12, hidden=(8, 6), activation="tanh")),
    "cnn-2d-batch-norm": (
        "cnn",
        cnn.Config(
            input_shape=(8, 6, 2), channels=(3, 4), kernel_size=3, hidden=5, batch_norm=True
        ),
    ),
    "transformer-classify-learned": (
        "transformer",
        transformer.Config(
            vocab_size=11,
            max_len=9,
            dim=8,
            num_heads=2,
            num_layers=2,
            task="classify",
            num_classes=3,
            positional="learned",
        ),
    ),
}


@pytest.fixture(scope="module")
def bench():
    """The benchmark script as a module (skips the test when PyTorch is not installed)."""
    pytest.importorskip("torch")
    spec = importlib.util.spec_from_file_location("bench_models", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def workloads(bench):
    """The three benchmark workloads, loaded once (name -> Workload)."""
    return {name: bench.load_workload(name) for name in bench.WORKLOADS}


def _example_input(model: models.Model, batch: int, dtype):
    cfg = model.cfg
    if model.name == "transformer":
        return RNG.integers(0, cfg.vocab_size, (batch, cfg.max_len - 2)).astype(np.int32)
    shape = (cfg.input_dim,) if model.name == "mlp" else cfg.input_shape
    return RNG.standard_normal((batch, *shape)).astype(dtype)  # (B, *input_shape)


def _assert_twin_matches_logits(bench, model: models.Model, x):
    """Copy jaxnn's params (as float64) into the twin and compare eval-mode logits in float64."""
    import torch

    with jax.enable_x64(True):
        to_f64 = lambda tree: jax.tree.map(lambda a: a.astype(jnp.float64), tree)
        params, state = jax.jit(lambda k: to_f64(model.init(k)))(jax.random.key(1))
        apply = jax.jit(lambda p, s, x: model.apply(p, x, state=s, train=False)[0])
        want = np.asarray(apply(params, state, jnp.asarray(x)))
    twin = bench.copy_jaxnn_params(bench.build_torch_twin(model).double().eval(), params)
    with torch.no_grad():
        got = twin(torch.as_tensor(x)).numpy()
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("name", ["mlp", "cnn", "transformer"])
def test_torch_twin_has_exactly_the_jaxnn_parameter_count(bench, workloads, name):
    model = workloads[name].model
    twin = bench.build_torch_twin(model)
    shapes, _ = jax.eval_shape(model.init, jax.random.key(0))
    jaxnn_count = sum(math.prod(leaf.shape) for leaf in jax.tree.leaves(shapes))
    assert models.get(name).param_count(shapes) == jaxnn_count
    assert bench.torch_param_count(twin) == jaxnn_count
    assert bench.jaxnn_param_count(model) == jaxnn_count


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_torch_twin_of_a_non_default_config_has_the_jaxnn_parameter_count(bench, variant):
    name, cfg = VARIANTS[variant]
    model = models.build(name, cfg)
    assert bench.torch_param_count(bench.build_torch_twin(model)) == bench.jaxnn_param_count(model)


@pytest.mark.parametrize("name", ["mlp", "cnn", "transformer"])
def test_torch_twin_computes_the_jaxnn_logits_from_copied_weights(bench, workloads, name):
    model = workloads[name].model
    x = np.asarray(workloads[name].batches[0][0][:2])  # (2, ...) real training examples
    x = x if name == "transformer" else x.astype(np.float64)
    _assert_twin_matches_logits(bench, model, x)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_torch_twin_of_a_non_default_config_computes_the_jaxnn_logits(bench, variant):
    name, cfg = VARIANTS[variant]
    model = models.build(name, cfg)
    x = _example_input(model, 3, np.float64)
    if name == "mlp":
        x = x.reshape(3, 3, 4)  # (B, 3, 4): both sides flatten trailing axes
    _assert_twin_matches_logits(bench, model, x)


def test_benchmark_batches_have_the_library_batch_sizes_and_shapes(workloads):
    assert workloads["mlp"].batches[0][0].shape == (128, 40)
    assert workloads["cnn"].batches[0][0].shape == (128, 40)
    assert workloads["transformer"].batches[0][0].shape == (32, 128)
    assert workloads["transformer"].batches[0][1].shape == (32, 128)  # next-character targets
    assert workloads["transformer"].task == "language_model"


def test_quick_mlp_run_completes_and_prints_a_finite_ratio(bench, tmp_path, capsys):
    out = tmp_path / "bench.json"
    report = bench.main(["--quick", "--workloads", "mlp", "--json", str(out)])
    printed = capsys.readouterr().out
    row = re.search(r"^mlp\s+(\d+)\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)$", printed, re.M)
    assert row is not None, printed
    ratio = float(row.group(5))
    assert math.isfinite(ratio) and ratio > 0
    assert float(row.group(6)) == 1.0  # the MLP is its own reference
    saved = json.loads(out.read_text())
    assert saved == json.loads(json.dumps(report))
    (result,) = saved["workloads"]
    assert result["workload"] == "mlp" and result["params"] == int(row.group(1))
    assert len(result["jaxnn_step_ms_repeats"]) == len(result["torch_step_ms_repeats"]) == 3
    assert math.isfinite(result["jaxnn_final_loss"]) and math.isfinite(result["torch_final_loss"])
    assert saved["environment"]["torch_threads"] == saved["environment"]["cpu_count"]


def test_unknown_workload_is_rejected_before_any_timing(bench, capsys):
    with pytest.raises(SystemExit):
        bench.main(["--quick", "--workloads", "mlp,resnet"])
    assert "resnet" in capsys.readouterr().err


def test_twin_builder_rejects_a_model_without_a_twin(bench):
    model = dataclasses.replace(models.build("mlp"), name="rnn")
    with pytest.raises(ValueError, match="rnn"):
        bench.build_torch_twin(model)
