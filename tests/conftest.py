import jax
import pytest


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
