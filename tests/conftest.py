import os

# The suite compiles far more programs than it runs steps: jaxnn.host_memory's one-arena mode
# would cost it about 25% of its time (tests/test_host_memory.py sets the mode in subprocesses).
os.environ.setdefault("JAXNN_HOST_MALLOC", "default")

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
