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
already mapped, with no page faults and no system time. The price is that the process keeps its
peak heap for its lifetime, which a training process reaches at every step anyway.
``jaxnn.train.fit``, ``jaxnn bench`` and the CLI call it; set
``JAXNN_HOST_MALLOC=default`` to leave the C library's settings alone.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import platform

__all__ = ["ENV", "reuse_freed_memory"]

#: Environment variable: ``default`` leaves glibc's malloc settings as they are.
ENV = "JAXNN_HOST_MALLOC"

# mallopt parameters from glibc's <malloc.h>.
_M_TRIM_THRESHOLD, _M_MMAP_MAX, _M_ARENA_MAX = -1, -4, -8
_SETTINGS = (
    (_M_ARENA_MAX, 1),  # one arena: large requests from any thread come from the brk heap
    (_M_MMAP_MAX, 0),  # no mmap for large requests (a thread's own arena still may, as a fallback)
    (_M_TRIM_THRESHOLD, 2**30),  # freed memory stays mapped unless a whole GiB is free at the top
)


@functools.cache
def reuse_freed_memory() -> bool:
    """Make glibc's ``malloc`` reuse freed memory without unmapping it; return True if applied.

    Idempotent, process-wide, and a no-op (returning False) off Linux, on a C library other than
    glibc, or when the environment variable :data:`ENV` is ``default``. See the module docstring
    for the page faults it removes from CPU train steps whose scratch memory exceeds 32 MiB.
    """
    if os.environ.get(ENV, "").strip().lower() == "default" or platform.system() != "Linux":
        return False
    if platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return all(mallopt(param, value) == 1 for param, value in _SETTINGS)
