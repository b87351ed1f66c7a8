"""jaxnn.host_memory: a CPU step whose scratch memory exceeds glibc's mmap threshold stops
page-faulting its buffer at every call once reuse_freed_memory() has run."""

from __future__ import annotations

import json
import platform
import subprocess
import sys

import pytest

from jaxnn import host_memory

# A jitted function with about 52 MB of scratch (two 26 MB intermediates live at once), run a few
# times; prints the median minor page faults per call as JSON. The setting is process-wide, so each
# measurement runs in its own interpreter.
_PROGRAM = """
import json, resource, sys
from jaxnn.host_memory import reuse_freed_memory
applied = reuse_freed_memory() if sys.argv[1] == "on" else False
import jax, jax.numpy as jnp
f = jax.jit(lambda x: (jnp.sin(x) @ jnp.cos(x) + jnp.tanh(x) * jnp.exp(-x)).sum())
x = jnp.ones((2560, 2560), jnp.float32) / 2560
temp = f.lower(x).compile().memory_analysis().temp_size_in_bytes
for _ in range(10):  # the heap grows to its steady size over the first few calls
    f(x).block_until_ready()
per_call = []
for _ in range(6):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    f(x).block_until_ready()
    per_call.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
faults = sorted(per_call)[3]
print(json.dumps({"applied": applied, "temp_pages": temp / 4096, "faults": faults}))
"""


def _measure(mode: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", _PROGRAM, mode], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only"
)
def test_a_step_with_big_scratch_memory_stops_page_faulting_once_freed_memory_is_kept():
    off, on = _measure("off"), _measure("on")
    assert on["applied"] is True and off["applied"] is False
    assert on["temp_pages"] > 32 * 2**20 / 4096, "the program must exceed the mmap threshold"
    if off["faults"] < 0.5 * off["temp_pages"]:
        pytest.skip(f"this C library does not re-fault freed scratch memory: {off}")
    assert on["faults"] < 0.05 * on["temp_pages"], (off, on)


def test_the_environment_variable_leaves_malloc_alone(monkeypatch):
    monkeypatch.setenv(host_memory.ENV, "default")
    host_memory.reuse_freed_memory.cache_clear()
    try:
        assert host_memory.reuse_freed_memory() is False
    finally:
        host_memory.reuse_freed_memory.cache_clear()
