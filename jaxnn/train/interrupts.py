"""Interrupts as flags — Chapter 15: Ctrl-C and SIGTERM stop a run at a safe point, never mid-write.

A Python signal handler runs between two bytecodes of the main thread, wherever that is. An
exception raised from it can land inside a callback that swallows it: JAX's garbage-collection
callback prints "Exception ignored in _xla_gc_callback" and training goes on. So the handlers
here only record the signal; :meth:`Deferred.check`, called by the loop between steps, after
evaluation and after a save, raises :class:`Interrupted` from ordinary code, where nothing can
swallow it. A save in progress therefore always completes first.

A second signal while the first waits ends the process at once, with status 128 + the signal
number (the last complete checkpoint is intact: saves are atomic).

Only :func:`deferred` installs handlers, for the duration of its block and on the main thread
only; the previous handlers come back when it ends. Importing this module changes nothing.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading

__all__ = ["Interrupted", "Deferred", "deferred", "exit_code", "end_now"]

SIGNALS = (signal.SIGINT, signal.SIGTERM)
_NAMES: dict[int, str] = {signal.SIGINT: "interrupted", signal.SIGTERM: "terminated (SIGTERM)"}


class Interrupted(KeyboardInterrupt):
    """Raised at a safe point after SIGINT or SIGTERM. A ``KeyboardInterrupt``, so code that
    handles Ctrl-C handles it too; ``signum`` says which signal came."""

    def __init__(self, signum: int):
        super().__init__(_NAMES.get(signum, f"signal {signum}"))
        self.signum = signum


def exit_code(signum: int) -> int:
    """The shell's exit status for a process ended by ``signum``: 128 + the signal number."""
    return 128 + int(signum)


def end_now(signum: int, message: str = "") -> None:
    """Write ``message`` to stderr and end the process now with status :func:`exit_code`.

    Safe inside a signal handler: it raises nothing that a callback could swallow, and runs no
    cleanup that could wait on the work being abandoned (``os._exit``).
    """
    if message:
        os.write(2, message.encode(errors="replace") + b"\n")
    os._exit(exit_code(signum))


class Deferred:
    """The signals caught inside a :func:`deferred` block; :meth:`check` acts on them."""

    def __init__(self):
        self.caught: int | None = None

    def _record(self, signum, frame) -> None:
        if self.caught is not None:  # the second signal: the user means it
            end_now(signum)
        self.caught = signum

    def check(self) -> None:
        """Raise :class:`Interrupted` if a signal came since the block began."""
        if self.caught is not None:
            raise Interrupted(self.caught)


@contextlib.contextmanager
def deferred():
    """Record SIGINT and SIGTERM as flags for the block; yield the :class:`Deferred` to check.

    Off the main thread (where Python cannot install handlers) and for a signal the process
    ignores, nothing is installed and :meth:`Deferred.check` never raises for it.
    """
    flags = Deferred()
    if threading.current_thread() is not threading.main_thread():
        yield flags
        return
    previous = {}
    for signum in SIGNALS:
        if signal.getsignal(signum) is not signal.SIG_IGN:
            previous[signum] = signal.signal(signum, flags._record)
    try:
        yield flags
    finally:
        for signum, handler in previous.items():  # None: installed outside Python
            signal.signal(signum, signal.SIG_DFL if handler is None else handler)
