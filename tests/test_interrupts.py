"""jaxnn.train.interrupts: signals are recorded as flags and raised at a safe point, so a signal
that arrives inside a callback that swallows exceptions (JAX's GC callback) is never lost."""

from __future__ import annotations

import gc
import os
import signal
import subprocess
import sys
import textwrap

import pytest

from jaxnn.train import interrupts


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_inside_a_gc_callback_is_raised_at_the_next_check(sig):
    def callback(phase, info):  # Python swallows (and prints) what a gc callback raises
        if phase == "start":
            os.kill(os.getpid(), sig)

    with interrupts.deferred() as flags:
        gc.callbacks.append(callback)
        try:
            gc.collect()
        finally:
            gc.callbacks.remove(callback)
        assert flags.caught == sig
        with pytest.raises(interrupts.Interrupted) as stop:
            flags.check()
    assert stop.value.signum == sig and isinstance(stop.value, KeyboardInterrupt)


def test_deferred_restores_the_previous_handlers_and_checks_nothing_without_a_signal():
    before = {s: signal.getsignal(s) for s in interrupts.SIGNALS}
    with interrupts.deferred() as flags:
        assert all(signal.getsignal(s) == flags._record for s in interrupts.SIGNALS)
        flags.check()
    assert {s: signal.getsignal(s) for s in interrupts.SIGNALS} == before


def test_a_second_signal_ends_the_process_with_the_signals_status():
    program = textwrap.dedent(
        """
        import os, signal, time
        from jaxnn.train import interrupts
        with interrupts.deferred() as flags:
            os.kill(os.getpid(), signal.SIGTERM)
            print("first recorded", flush=True)
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)
        print("not reached", flush=True)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 143 and out.stdout == "first recorded\n"


def test_exit_code_is_128_plus_the_signal():
    assert interrupts.exit_code(signal.SIGINT) == 130
    assert interrupts.exit_code(signal.SIGTERM) == 143


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_an_exception_raised_by_a_handler_inside_a_gc_callback_is_lost():
    """Why the handlers only record: the same signal, handled by raising, vanishes."""

    def raise_(signum, frame):
        raise RuntimeError("stop")

    def callback(phase, info):
        if phase == "start":
            os.kill(os.getpid(), signal.SIGTERM)

    previous = signal.signal(signal.SIGTERM, raise_)
    gc.callbacks.append(callback)
    try:
        gc.collect()  # prints "Exception ignored in: <function callback ...>" and goes on
    finally:
        gc.callbacks.remove(callback)
        signal.signal(signal.SIGTERM, previous)
