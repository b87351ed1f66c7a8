"""The CNN forms of benchmarks/conv_forms.py compute the CNN's function and time in one run."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from benchmarks import bench, conv_forms
from jaxnn import models


@pytest.fixture(scope="module")
def full_size():
    work = bench.WORKLOADS["cnn_b128"]
    cfg = bench._config(work, False)
    model = models.build("cnn", cfg)
    params, _ = model.init(jax.random.key(0))
    x = jnp.asarray(np.random.default_rng(0).standard_normal((4, 28, 28, 1)), jnp.float32)
    return model, params, x, tuple(cfg.input_shape)


@pytest.mark.parametrize("name", ["nhwc", "nchw", "patch1", "taps1", "patch12", "bf16"])
def test_each_form_gives_the_logits_and_gradients_of_jaxnns_cnn(full_size, name):
    model, params, x, shape = full_size
    forward = conv_forms.forms(2)[name]
    want = model.apply(params, x)[0]
    tol = 0.1 if name == "bf16" else 1e-4  # bf16 rounds the convolutions' inputs to 8 bits
    np.testing.assert_allclose(forward(params, x, shape), want, atol=tol, rtol=tol)
    grad = lambda f: jax.grad(lambda p: jnp.sum(f(p) ** 2))(params)
    got = grad(lambda p: forward(p, x, shape))
    ref = grad(lambda p: model.apply(p, x)[0])
    for g, r in zip(jax.tree.leaves(got), jax.tree.leaves(ref), strict=True):
        scale = float(jnp.max(jnp.abs(r)))
        np.testing.assert_allclose(g, r, atol=tol * max(scale, 1.0), rtol=tol)


def test_a_quick_run_times_each_form_with_and_without_library_fusion_beside_jaxnn(tmp_path, capsys):
    record = conv_forms.run(["--quick", "--forms", "nhwc,patch1", "--no-torch"])
    assert sorted(record["rows"]) == ["jaxnn", "nhwc", "nhwc+ynn", "patch1", "patch1+ynn"]
    assert all(len(r["rounds_ms"]) == 2 and r["median_ms"] > 0 for r in record["rows"].values())
    assert record["rows"]["patch1"]["maxerr"] < 1e-5
    assert "patch1+ynn" in capsys.readouterr().out


def test_an_unknown_form_is_refused_naming_the_known_ones(capsys):
    with pytest.raises(SystemExit):
        conv_forms.run(["--quick", "--forms", "nhwc,winograd"])
    assert "winograd" in capsys.readouterr().err
