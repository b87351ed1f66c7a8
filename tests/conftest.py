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
