import os
import shutil
import tempfile

import jax
import pytest

_CACHE = "JAX_COMPILATION_CACHE_DIR"


def pytest_configure(config):
    """One XLA compilation cache for this session: a fresh temporary folder shared by this process,
    its pytest-xdist workers (started later, they inherit the environment) and every subprocess a
    test starts, so the many tests that compile the same step compile it once. The key of a cached
    program holds its HLO, compile options, XLA flags, devices and the jax version, so a hit is the
    program XLA would build again. jaxnn itself sets no cache: a user's process is left alone.
    ``JAXNN_TEST_XLA_CACHE=0`` turns it off; a cache the caller set is used as it is."""
    if os.environ.get("JAXNN_TEST_XLA_CACHE") == "0" or hasattr(config, "workerinput"):
        return
    if _CACHE not in os.environ:
        config._jaxnn_xla_cache = tempfile.mkdtemp(prefix="jaxnn-tests-xla-cache-")
        os.environ[_CACHE] = config._jaxnn_xla_cache
        os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
    jax.config.update("jax_compilation_cache_dir", os.environ[_CACHE])
    jax.config.update(
        "jax_persistent_cache_min_compile_time_secs",
        float(os.environ.get("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "1")),
    )


def pytest_unconfigure(config):
    """Remove the session's cache folder (only the one this session made)."""
    folder = getattr(config, "_jaxnn_xla_cache", None)
    if folder:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(params=["eager", "jit"])
def transform(request):
    """Run the same assertion eager and under ``jax.jit``."""
    return (lambda f: f) if request.param == "eager" else jax.jit


@pytest.fixture
def x64():
    """Float64 for the duration of a test (gradient checks)."""
    with jax.enable_x64(True):
        yield


@pytest.fixture
def gradient_scratch_bytes():
    """``(apply, cfg, params, x) -> int``: XLA's scratch (temp) bytes for the gradient of
    ``sum(apply(params, x, cfg=cfg)[0] ** 2)``; skips the test where the backend gives no memory
    analysis."""

    def measure(apply, cfg, params, x):
        loss = lambda p, x: jax.numpy.sum(apply(p, x, cfg=cfg)[0] ** 2)
        stats = jax.jit(jax.grad(loss)).lower(params, x).compile().memory_analysis()
        if stats is None:
            pytest.skip(f"no memory analysis on {jax.default_backend()}")
        return stats.temp_size_in_bytes

    return measure
