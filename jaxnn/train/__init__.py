"""Training: state, jitted steps, the fit loop, checkpoints and logs (Chapters 6, 8, 13-15).

Importing it changes nothing in the process. On CPU, steps whose scratch memory exceeds 32 MiB
run faster after :func:`jaxnn.host_memory.reuse_freed_memory`, a process-wide setting that the
``jaxnn`` command applies at its start and a training script may call first thing.
"""

from jaxnn.train.interrupts import Interrupted
from jaxnn.train.loop import FitConfig, FitResult, LoopState, evaluate, fit, train_epoch
from jaxnn.train.state import TrainState, create_train_state, params_sha256
from jaxnn.train.step import make_eval_step, make_train_step

__all__ = [
    "TrainState",
    "create_train_state",
    "params_sha256",
    "make_train_step",
    "make_eval_step",
    "evaluate",
    "fit",
    "FitConfig",
    "FitResult",
    "LoopState",
    "Interrupted",
    "train_epoch",
]
