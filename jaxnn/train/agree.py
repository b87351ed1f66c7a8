"""Processes that agree — Chapter 15 across hosts: the same run everywhere, one stopping step.

A multi-process run is one program executed by every process; it goes wrong quietly when the
processes are not running the same thing (another flag, another jaxnn) and it hangs when one
process stops alone (its peers wait in the next collective). This module makes them agree:

- :func:`check_same_run`: at the start, every process gathers a SHA-256 of its run record (model
  and its config, dataset, the fit settings, the data record, the jaxnn version) from all the
  others and refuses with one line naming the first process that differs;
- :func:`shared_run_id`: process 0's run id, for every process;
- :func:`deferred`: Ctrl-C and SIGTERM as flags (:mod:`jaxnn.train.interrupts`) that the
  processes agree on. A signal reaches one process; every :data:`AGREE_EVERY` checks (after
  steps, after evaluation) and at every :meth:`Agreed.check_now` (after each checkpoint) the
  processes gather their flags, a tiny all-gather, and if any process was signalled every one
  raises :class:`~jaxnn.train.interrupts.Interrupted` at the same point. The last checkpoint is
  then the same step for all of them, saved together, and the run resumes from it.

With one process every function is what it was without this module: the record is not hashed,
the id is the caller's, and each check acts at once on this process's own signal.
"""

from __future__ import annotations

import contextlib
import hashlib
import json

import jax
import numpy as np

from jaxnn.errors import UserError
from jaxnn.train import interrupts

__all__ = ["AGREE_EVERY", "Agreed", "check_same_run", "deferred", "run_digest", "shared_run_id"]

AGREE_EVERY = 10  #: checks between two agreements on the signal flags (multi-process only)


def _gather(value: np.ndarray) -> np.ndarray:
    from jax.experimental import multihost_utils

    return np.asarray(multihost_utils.process_allgather(value))


def run_digest(record: dict) -> str:
    """The SHA-256 of ``record`` with the jaxnn version, over its sorted JSON."""
    from jaxnn import __version__

    text = json.dumps({"record": record, "jaxnn": __version__}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def check_same_run(record: dict, *, name: str = "fit") -> None:
    """Refuse, on every process, a run whose processes differ in ``record`` or jaxnn version.

    Chapter 15: data parallelism assumes every process runs the same program on its own rows.

    Raises:
      UserError: one line naming the first process whose digest differs from process 0's.
    """
    if jax.process_count() == 1:
        return
    mine = np.frombuffer(bytes.fromhex(run_digest(record)), np.uint8)
    digests = _gather(mine).reshape(jax.process_count(), -1)
    differ = [i for i in range(len(digests)) if not np.array_equal(digests[i], digests[0])]
    if differ:
        raise UserError(
            f"{name}: process {differ[0]} runs another config or jaxnn version than process 0 "
            f"(run digest {digests[differ[0]].tobytes().hex()[:12]} against "
            f"{digests[0].tobytes().hex()[:12]}); start every process with the same flags, "
            "data and jaxnn"
        )


def shared_run_id(run_id: str) -> str:
    """Process 0's ``run_id`` (a 32-digit hex id), on every process."""
    if jax.process_count() == 1:
        return run_id
    from jax.experimental import multihost_utils

    raw = np.frombuffer(run_id.encode().ljust(64)[:64], np.uint8)
    shared = np.asarray(multihost_utils.broadcast_one_to_all(raw), np.uint8)
    return shared.tobytes().decode().strip()


class Agreed:
    """Signal flags checked in agreement: the :class:`~jaxnn.train.interrupts.Deferred` of this
    process, and the others' at the agreed points (see the module docstring)."""

    def __init__(self, flags: interrupts.Deferred, every: int = AGREE_EVERY):
        self.flags, self.every, self._ticks = flags, every, 0

    @property
    def caught(self) -> int | None:
        """The signal this process caught, or None."""
        return self.flags.caught

    def check(self) -> None:
        """Raise :class:`~jaxnn.train.interrupts.Interrupted` if a signal came: at once with one
        process; with several, at every ``every``-th call, if any process caught one."""
        if jax.process_count() == 1:
            self.flags.check()
            return
        self._ticks += 1
        if self._ticks % self.every == 0:
            self.check_now()

    def check_now(self) -> None:
        """Agree now: raise :class:`~jaxnn.train.interrupts.Interrupted` on every process if
        any process caught a signal (a collective every process must reach)."""
        if jax.process_count() == 1:
            self.flags.check()
            return
        caught = _gather(np.asarray(self.flags.caught or 0, np.int32)).reshape(-1)
        if caught.any():
            raise interrupts.Interrupted(int(caught.max()))


@contextlib.contextmanager
def deferred(every: int = AGREE_EVERY):
    """:func:`jaxnn.train.interrupts.deferred`, yielding its flags as an :class:`Agreed`."""
    with interrupts.deferred() as flags:
        yield Agreed(flags, every)
