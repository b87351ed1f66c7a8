"""Host memory for CPU train steps: keep freed memory for the next step instead of returning it.

On the CPU backend, XLA runs each compiled step in one scratch ("temp") buffer, allocated with the
C library's ``malloc`` at every call and freed at its end. glibc serves a request above its mmap
threshold (at most 32 MiB) with a fresh ``mmap`` and gives it back with ``munmap``, so a step
whose scratch exceeds that size page-faults its whole buffer at every call: the kernel maps and
zeroes every 4 KiB page again. Measured with ``resource.getrusage`` on the 2-core CPU of the
README's benchmark, the Transformer LM step (177 MB of scratch) took 45,000 minor faults and about
70 ms of system time (summed over threads) per step of 110 ms; the CNN (39 MB) 9,500 faults and
15-18 ms. An MLP step (3-11 MB) takes none, which is why small models never showed it.

:func:`reuse_freed_memory` tells glibc (``mallopt``) to serve every thread from one arena grown
with ``brk`` instead of separate ``mmap`` regions, and never to trim freed memory: once the heap
has grown to its steady size (within a few steps) the scratch buffer comes back from the heap
already mapped, with no page faults and no system time, in most steps: now and then a step still
re-faults the whole buffer (up to half of the calls in the tests under load; the cause was not
found). The price is that the process keeps its
peak heap for its lifetime, which a training process reaches at every step anyway.

glibc binds a thread to an arena at the thread's first allocation, so the setting only helps if it
comes before XLA's threads first run: the ``jaxnn`` command and the benchmarks call it at their
start; importing the library never does (a script of your own calls it before it computes).
The cost: XLA's threads share the one arena, so each compile takes about 0.1 s (some 20%) longer,
and so do small steps that never faulted: in the quickstart run (the MNIST-1D CNN) the first
epoch took 1.70 s against 1.36 s and the later ones 0.051 s against 0.042 s, about 10% of the
run's wall time.
``JAXNN_HOST_MALLOC=default`` leaves the C library's settings alone.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import platform

__all__ = ["ENV", "MODES", "reuse_freed_memory"]

#: Environment variable choosing the mode: ``arena`` (the default) or ``default``.
ENV = "JAXNN_HOST_MALLOC"

# mallopt parameters from glibc's <malloc.h>.
_M_TRIM_THRESHOLD, _M_MMAP_MAX, _M_ARENA_MAX = -1, -4, -8
#: What each mode sets. ``arena`` puts every thread on the one brk-grown arena and turns mmap and
#: trimming off, so a scratch buffer of any size comes back mapped. Without the one arena (mmap and
#: trimming off only) a thread's own arena, whose heaps hold at most 64 MiB, still maps and unmaps
#: large buffers: a 52 MB one faulted at every call in the tests.
MODES = {
    "arena": (
        (_M_ARENA_MAX, 1),  # every thread allocates from the main, brk-grown arena
        (_M_MMAP_MAX, 0),  # no mmap for large requests
        (_M_TRIM_THRESHOLD, 2**30),  # freed memory stays mapped unless a GiB is free at the top
    ),
    "default": (),
}


@functools.cache
def reuse_freed_memory() -> str | None:
    """Make glibc's ``malloc`` reuse freed memory without unmapping it; return the mode applied.

    The mode comes from the environment variable :data:`ENV` (``arena`` when unset; see
    :data:`MODES`). Idempotent and process-wide; returns None off Linux, on a C library other
    than glibc, for ``default`` or for an unknown mode (the C library's settings stay as they
    are). Call it before the first JAX computation: threads that have already allocated keep
    their own arenas. See the module docstring for the page faults it removes from CPU train
    steps whose scratch memory exceeds 32 MiB.
    """
    mode = os.environ.get(ENV, "").strip().lower() or "arena"
    if not MODES.get(mode) or platform.system() != "Linux":
        return None
    if platform.libc_ver()[0] != "glibc":
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return None
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return mode if all(mallopt(param, value) == 1 for param, value in MODES[mode]) else None
