"""Training: state, jitted steps, the fit loop, checkpoints and logs (Chapters 6, 8, 13-15).

Importing this package calls :func:`jaxnn.host_memory.reuse_freed_memory` (opt out with
``JAXNN_HOST_MALLOC=default``): glibc only applies it to threads that have not allocated yet, so it
must run before the first JAX computation, and a training script imports its trainer first.
"""

from jaxnn.host_memory import reuse_freed_memory
from jaxnn.train.loop import FitConfig, FitResult, LoopState, evaluate, fit, train_epoch
from jaxnn.train.state import TrainState, create_train_state, params_sha256
from jaxnn.train.step import make_eval_step, make_train_step

reuse_freed_memory()  # before XLA's threads first allocate (importing jax starts none)

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
    "train_epoch",
]
