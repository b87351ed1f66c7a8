"""Tests for ``jaxnn bench`` (jaxnn/bench.py) and its twins.

The quick run must complete and write well-formed JSON; speed is never asserted. The twins must
be the jaxnn models: the hand-written JAX forward pass and the PyTorch twins give the jaxnn logits
from the same weights (PyTorch tests skip without PyTorch).
"""

import argparse
import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnn import bench, bench_jax, models
from jaxnn.errors import UserError

RNG = np.random.default_rng(0)


def _quick_args(tmp_path, only, columns="jaxnn,jax,flax,torch"):
    parser = argparse.ArgumentParser()
    bench.add_parser(parser.add_subparsers())
    argv = ["bench", "--quick", "--only", only, "--columns", columns]
    return parser.parse_args([*argv, "--json", str(tmp_path / "bench.json")])


def _check_report(saved: dict, names: list[str]) -> None:
    assert saved["quick"] is True and saved["environment"]["matmul_peak_gflops"] > 0
    assert list(saved["workloads"]) == names
    for rec in saved["workloads"].values():
        assert rec["columns"]["jaxnn"]["status"] == rec["columns"]["jax"]["status"] == "ok"
        for col in rec["columns"].values():
            assert col["status"] in ("ok", "skipped")
            if col["status"] == "ok":
                assert col["min_ms"] <= col["median_ms"] <= col["max_ms"]
                assert len(col["rounds_ms"]) == saved["method"]["rounds"]
                assert col["per_second"] > 0 and col["first_step_s"] > 0
        assert set(rec["ratios"]) == {
            f"jaxnn_vs_{c}" for c, v in rec["columns"].items() if c != "jaxnn" and "median_ms" in v
        }


def test_quick_run_writes_well_formed_json_and_prints_a_table_row(tmp_path, capsys):
    args = _quick_args(tmp_path, "mlp_b128", columns="jaxnn,jax,torch")
    assert bench.run(args) == 0
    printed = capsys.readouterr().out
    assert "| mlp_b128 |" in printed
    saved = json.loads((tmp_path / "bench.json").read_text())
    _check_report(saved, ["mlp_b128"])
    torch_col = saved["workloads"]["mlp_b128"]["columns"]["torch"]
    if torch_col["status"] == "ok":
        assert saved["environment"]["torch_threads"] == saved["environment"]["cpu_count"]


@pytest.mark.slow
def test_quick_run_of_every_workload_writes_well_formed_json(tmp_path):
    args = _quick_args(tmp_path, ",".join(bench.WORKLOADS))
    assert bench.run(args) == 0
    _check_report(json.loads((tmp_path / "bench.json").read_text()), list(bench.WORKLOADS))


def test_an_unknown_workload_is_a_user_error_naming_it(tmp_path):
    with pytest.raises(UserError, match="resnet"):
        bench.bench(_quick_args(tmp_path, "mlp_b128,resnet"))


def _model(name: str, quick: bool = True) -> tuple:
    work = bench.WORKLOADS[name]
    cfg = bench._config(work, quick)
    return work, cfg, models.build(work.model, cfg)


@pytest.mark.parametrize("name", ["mlp_b128", "cnn_b128", "transformer", "nanogpt", "gru_mnist1d"])
def test_hand_written_jax_forward_gives_the_jaxnn_logits(name):
    work, cfg, model = _model(name)
    params, state = model.init(jax.random.key(1))
    x, _ = bench._batches(work, cfg, 3)[0]
    want, _ = model.apply(params, jnp.asarray(x), state=state)
    got = bench_jax.forward(work.model, params, jnp.asarray(x), cfg)
    np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-5)


@pytest.mark.parametrize("name", ["mlp_b128", "cnn_b128", "transformer", "nanogpt", "gru_mnist1d"])
def test_torch_twin_has_the_jaxnn_parameter_count_and_logits(name):
    pytest.importorskip("torch")
    import torch

    from jaxnn import bench_torch

    work, cfg, model = _model(name)
    x, _ = bench._batches(work, cfg, 2)[0]
    with jax.enable_x64(True):
        to_f64 = lambda tree: jax.tree.map(lambda a: a.astype(jnp.float64), tree)
        params, state = jax.jit(lambda k: to_f64(model.init(k)))(jax.random.key(1))
        xin = x if work.task == "language_model" else x.astype(np.float64)
        want = np.asarray(model.apply(params, jnp.asarray(xin), state=state)[0])
    twin = bench_torch.build_torch_twin(model).double().eval()
    count = sum(math.prod(a.shape) for a in jax.tree.leaves(params))
    assert bench_torch.torch_param_count(twin) == count
    bench_torch.copy_jaxnn_params(twin, params)
    with torch.no_grad():
        got = twin(torch.as_tensor(xin)).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)


@pytest.mark.slow
def test_flax_twin_trains_each_quick_workload_to_a_finite_loss():
    pytest.importorskip("flax")
    from jaxnn import bench_flax

    for name in ("mlp_b128", "cnn_b128", "transformer", "gru_mnist1d"):
        work, cfg, _ = _model(name)
        step, state = bench_flax.make_step(work.model, cfg)
        x, y = bench._batches(work, cfg, 2)[0]
        _, loss = step(state, x, y)
        assert np.isfinite(float(loss)), name
