"""How to train: :class:`FitConfig`, the flat settings of a run, and the concerns its parts read.

``FitConfig`` is the public face: one frozen dataclass whose fields are the ``jaxnn train`` flags
and the ``"fit"`` record of a run's ``config.json``. Each part of the loop reads one concern of it,
a small frozen view derived from the config (Chapter 15's loop, taken apart):

- :class:`Optimization`: what makes the updates (optimizer, learning rate and its schedule, weight
  decay, gradient clipping);
- :class:`LoopPolicy`: how long to train and when to stop (epochs, early stopping, the divergence
  guard);
- :class:`Execution`: how the steps run (batch size and the last batch, scan, data placement,
  devices, precision, augmentation, the seed);
- :class:`Output`: what the run leaves behind (checkpoints kept, the progress bar).

Every field is declared with :func:`setting`, which keeps its help text (and its choices, if it
has any) beside it: the command line shows that text, so a flag and a field cannot drift apart.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from typing import Any

from jaxnn import optim
from jaxnn.errors import UserError

__all__ = [
    "FitConfig",
    "Optimization",
    "LoopPolicy",
    "Execution",
    "Output",
    "setting",
    "check_field_types",
    "check_field_choices",
]

MONITORS = ("val_accuracy", "val_loss")
#: the augmentations a run may name (which apply depends on the data: jaxnn.data.augment)
_AUGMENTS = ("none", "shift", "circular_shift", "crop", "noise")
#: what an epoch does with its last, smaller batch
LAST_BATCH = ("train", "drop")
_MAX_SEED = 2**32 - 1
REQUIRED = dataclasses.MISSING  #: the default of a setting that must be given


def setting(default=REQUIRED, help: str = "", *, choices=(), metavar: str | None = None) -> Any:
    """A dataclass field that carries its help text, for configs that are also command lines.

    Args:
      default: the field's default; :data:`REQUIRED` (the default) for none.
      help: one plain sentence, shown by ``--help`` (no markup).
      choices: the values the field accepts (checked by :func:`check_field_choices`).
      metavar: the placeholder ``--help`` shows for the value.

    Returns:
      A :func:`dataclasses.field` whose ``metadata`` holds ``help``, ``choices`` and ``metavar``.
    """
    metadata = {"help": help, "choices": tuple(choices), "metavar": metavar}
    return dataclasses.field(default=default, metadata=metadata)


@dataclasses.dataclass(frozen=True)
class FitConfig:
    """How to train. Each field is also a train flag (``batch_size`` -> ``--batch-size``), and its
    help text is declared with it. The loop's parts read the concerns :attr:`optimization`,
    :attr:`policy`, :attr:`execution` and :attr:`output`.

    Raises:
      UserError: (a ``ValueError``) naming the first field of the wrong type, out of its range
        or not among its choices.
    """

    epochs: int = setting(20, "passes over the training split.")
    batch_size: int = setting(
        128,
        "global examples per step (split over devices and processes); one larger than the "
        "training split is clipped to it, with a notice.",
    )
    lr: float = setting(1e-3, "peak learning rate.")
    optimizer: str = setting("adam", "the optimizer.", choices=optim.OPTIMIZERS)
    schedule: str = setting("constant", "the learning-rate schedule.", choices=optim.SCHEDULES)
    warmup_steps: int = setting(0, "linear warm-up steps for warmup_cosine.")
    weight_decay: float = setting(
        0.0, "decoupled weight decay (Chapter 13); needs adamw, sgd, momentum or nesterov."
    )
    clip_norm: float = setting(0.0, "clip gradients to this global norm (Chapter 14); 0 disables.")
    seed: int = setting(
        0, "seeds initialisation, data order, dropout and augmentation (0 to 2**32 - 1)."
    )
    patience: int = setting(
        0, "early stopping after this many epochs without improvement; 0 disables."
    )
    min_delta: float = setting(
        0.0, "smallest change of the monitored metric that counts as improvement."
    )
    monitor: str = setting(
        "val_accuracy",
        "val_accuracy (higher is better) or val_loss (lower is better).",
        choices=MONITORS,
    )
    keep_last: int = setting(2, "checkpoints kept, newest first.")
    keep_best: int = setting(1, "checkpoints kept by best validation metric.")
    scan: bool = setting(
        False, "run each epoch as one compiled lax.scan over the batches (data on device)."
    )
    device_data: bool = setting(
        True,
        "keep the training split on the device(s) and gather each batch there from its indices "
        "(one process only); off streams batches from host memory.",
    )
    devices: int = setting(
        0, "shard each batch over this many devices; 0 means one device, no mesh."
    )
    augment: str = setting(
        "none",
        "training-time augmentation: none, shift, circular_shift, crop or noise (several joined "
        "by +; which apply depends on the data).",
    )
    divergence_factor: float = setting(
        100.0, "stop when the loss exceeds this multiple of the first step's loss."
    )
    dtype: str = setting(
        "float32",
        "compute dtype of the forward and backward pass; bfloat16 keeps float32 master params "
        "and optimizer state (mixed precision).",
        choices=("float32", "bfloat16"),
    )
    eval_batch_size: int = setting(1000, "batch size for validation and test scoring.")
    progress: bool = setting(True, "show a progress bar.")
    checkpoint: bool = setting(True, "write checkpoints when an output directory is given.")
    # nanoGPT's recipe (Chapter 8): after the fields above, so the fit record keeps their order.
    min_lr: float = setting(0.0, "the learning rate the cosine schedules end at.")
    decay_steps: int = setting(
        0, "steps the schedule decays over (then stays at min_lr); 0 means the whole run."
    )
    beta2: float = setting(0.999, "Adam's second-moment decay (adam and adamw).")
    weight_decay_mask: str = setting(
        "all",
        "which parameters weight decay reaches: all, or matrices (two or more dimensions: not "
        "biases or norm scales).",
        choices=optim.DECAY_MASKS,
    )
    mesh: str = setting(
        "",
        "a named device mesh, e.g. data=2,fsdp=2: the batch is split over every axis and the "
        "large parameters and optimizer moments along fsdp (--devices N is data=N).",
        metavar="AXIS=SIZE,...",
    )
    shard_leaf: str = setting(
        "",
        "override the fsdp rule for the leaves whose path matches a pattern: PATTERN=DIM or "
        "PATTERN=none, comma-separated, e.g. embed/w=none,*/wq=1.",
        metavar="PATTERN=DIM,...",
    )
    last_batch: str = setting(
        "train",
        "the last, smaller batch of each epoch: train on it (every example once per epoch, a "
        "second compiled shape) or drop it (every step the same shape; the built-in MNIST-1D "
        "recipes were measured so).",
        choices=LAST_BATCH,
    )
    max_steps: int = setting(
        0,
        "train exactly this many steps, scored at each epoch's end and after the last step (the "
        "last epoch is cut short; the schedule decays over them); 0 means the epochs decide, "
        "and a nonzero value replaces epochs.",
    )

    def __post_init__(self):
        check_field_types(self)
        _check_field_ranges(self)
        check_field_choices(self)
        _check_optimizer_settings(self)
        _check_placement(self)
        if self.warmup_steps and self.schedule != "warmup_cosine":
            raise UserError(
                f"FitConfig: warmup_steps applies to schedule 'warmup_cosine' only, got "
                f"warmup_steps={self.warmup_steps} with schedule {self.schedule!r}"
            )

    @property
    def optimization(self) -> Optimization:
        """The optimizer's settings."""
        return _view(Optimization, self)

    @property
    def policy(self) -> LoopPolicy:
        """How long the loop trains and when it stops."""
        return _view(LoopPolicy, self)

    @property
    def execution(self) -> Execution:
        """How the steps run."""
        return _view(Execution, self)

    @property
    def output(self) -> Output:
        """What the run leaves behind."""
        return _view(Output, self)


# ---------------------------------------------------------------------------------------------
# The concerns: views of a FitConfig (which checks the values), one per part of the loop.


@dataclasses.dataclass(frozen=True)
class Optimization:
    """What makes the updates: :func:`jaxnn.train.loop.make_optimizer` reads it (Chapters 6, 8,
    13, 14). The fields mean what :class:`FitConfig`'s do."""

    optimizer: str
    lr: float
    schedule: str
    warmup_steps: int
    min_lr: float
    decay_steps: int
    beta2: float
    weight_decay: float
    weight_decay_mask: str
    clip_norm: float


@dataclasses.dataclass(frozen=True)
class LoopPolicy:
    """How long the loop trains and when it stops: the epochs, early stopping on the monitored
    validation metric (Chapter 13) and the divergence guard (Chapter 14)."""

    epochs: int
    max_steps: int
    patience: int
    min_delta: float
    monitor: str
    divergence_factor: float

    def total_steps(self, steps_per_epoch: int) -> int:
        """Steps of the whole run: ``max_steps`` when set, else ``epochs x steps_per_epoch``."""
        return self.max_steps or self.epochs * steps_per_epoch

    def epochs_for(self, steps_per_epoch: int) -> int:
        """Epochs the run visits: ``epochs``, or with ``max_steps`` as many as its steps need
        (``ceil(max_steps / steps_per_epoch)``, the last one cut short)."""
        return -(-self.max_steps // steps_per_epoch) if self.max_steps else self.epochs


@dataclasses.dataclass(frozen=True)
class Execution:
    """How the steps run: the batches and their order, where the data lives, the devices, the
    compute dtype, augmentation and the seed of every random draw."""

    batch_size: int
    last_batch: str
    scan: bool
    device_data: bool
    devices: int
    mesh: str
    shard_leaf: str
    dtype: str
    eval_batch_size: int
    augment: str
    seed: int


@dataclasses.dataclass(frozen=True)
class Output:
    """What the run leaves behind besides its logs: the checkpoints kept, and the progress bar."""

    keep_last: int
    keep_best: int
    progress: bool
    checkpoint: bool


CONCERNS = (Optimization, LoopPolicy, Execution, Output)


def _view(cls, cfg: FitConfig):
    return cls(**{f.name: getattr(cfg, f.name) for f in dataclasses.fields(cls)})


# ---------------------------------------------------------------------------------------------
# Checks shared by every config of settings.


def _check_optimizer_settings(cfg: FitConfig) -> None:
    """Raise a :class:`UserError` for a setting that does not apply to the optimizer or the
    schedule chosen (it would be ignored, or fail once training starts)."""
    if cfg.optimizer == "adam" and cfg.weight_decay > 0:
        raise UserError(
            f"FitConfig: 'adam' takes no weight decay, got weight_decay={cfg.weight_decay}; "
            "use 'adamw' for Adam with decoupled weight decay"
        )
    if cfg.beta2 != 0.999 and cfg.optimizer not in ("adam", "adamw"):
        raise UserError(
            f"FitConfig: beta2 applies to adam and adamw, got optimizer {cfg.optimizer!r}"
        )
    _check_schedule_settings(cfg)


def _check_schedule_settings(cfg: FitConfig) -> None:
    """Raise a :class:`UserError` for a schedule setting the chosen schedule cannot honour."""
    if (cfg.min_lr or cfg.decay_steps) and cfg.schedule == "constant":
        raise UserError(
            "FitConfig: min_lr and decay_steps apply to the cosine schedules, got schedule "
            "'constant' (add --schedule cosine or warmup_cosine)"
        )
    if cfg.min_lr >= cfg.lr:
        raise UserError(f"FitConfig: expected min_lr below lr ({cfg.lr}), got {cfg.min_lr}")
    if cfg.decay_steps and cfg.decay_steps <= cfg.warmup_steps:
        raise UserError(
            f"FitConfig: expected decay_steps above warmup_steps ({cfg.warmup_steps}), "
            f"got {cfg.decay_steps}"
        )


def _check_field_ranges(cfg: FitConfig) -> None:
    """Raise a :class:`UserError` naming the first field out of its range."""
    checks = [(n, "> 0", lambda v: v > 0) for n in ("epochs", "batch_size", "eval_batch_size")]
    checks += [("keep_last", "> 0", lambda v: v > 0)]
    checks += [
        (n, ">= 0", lambda v: v >= 0)
        for n in ("patience", "devices", "warmup_steps", "decay_steps", "keep_best", "max_steps")
    ]
    checks += [(n, ">= 0", lambda v: v >= 0) for n in ("weight_decay", "min_lr")]
    checks += [("beta2", "in (0, 1)", lambda v: 0 < v < 1)]
    checks += [
        (n, "> 0", lambda v: math.isfinite(v) and v > 0) for n in ("lr", "divergence_factor")
    ]
    checks += [("seed", "in [0, 2**32 - 1]", lambda v: 0 <= v <= _MAX_SEED)]
    checks += [("clip_norm", ">= 0 (0 disables clipping)", lambda v: v >= 0)]  # NaN fails
    checks += [("augment", _augment_names(), lambda v: all(p in _AUGMENTS for p in v.split("+")))]
    for name, want, ok in checks:
        if not ok(getattr(cfg, name)):
            raise UserError(f"FitConfig: expected {name} {want}, got {getattr(cfg, name)}")


def _check_placement(cfg: FitConfig) -> None:
    """Raise a :class:`UserError` for a ``mesh`` or ``shard_leaf`` that does not parse."""
    from jaxnn import parallel, sharding

    try:
        if cfg.mesh:
            size = math.prod(parallel.parse_mesh(cfg.mesh).values())
            if cfg.devices and cfg.devices != size:
                raise ValueError(
                    f"expected devices ({cfg.devices}) to equal the size of mesh {cfg.mesh!r} "
                    f"({size}); give one of them"
                )
        sharding.parse_overrides(cfg.shard_leaf)
    except ValueError as err:
        raise UserError(f"FitConfig: {err}") from None


def _augment_names() -> str:
    return f"in {', '.join(_AUGMENTS)} (or several joined by '+')"


def check_field_types(cfg) -> None:
    """Raise a :class:`UserError` naming the first field whose value has the wrong type.

    A ``bool`` is no ``int``; an ``int`` is a ``float``; a float is finite (except
    ``clip_norm``); a ``tuple[str, ...]`` field holds a tuple; ``T | None`` takes ``None``.
    """
    hints = typing.get_type_hints(type(cfg))
    for field in dataclasses.fields(cfg):
        kind, value = hints[field.name], getattr(cfg, field.name)
        if isinstance(kind, types.UnionType) and type(None) in typing.get_args(kind):
            if value is None:
                continue
            (kind,) = (k for k in typing.get_args(kind) if k is not type(None))
        kind = typing.get_origin(kind) or kind  # tuple[str, ...] -> tuple
        if not _has_type(value, kind, finite=field.name != "clip_norm"):
            raise UserError(
                f"{type(cfg).__name__}: expected {field.name} to be {kind.__name__}, got {value!r}"
            )


def _has_type(value, kind: type, *, finite: bool) -> bool:
    if kind is float:
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        return number and (math.isfinite(value) or not finite)
    return isinstance(value, kind) and (kind is bool or not isinstance(value, bool))


def check_field_choices(cfg) -> None:
    """Raise a :class:`UserError` naming the first field whose value is not among its choices."""
    for field in dataclasses.fields(cfg):
        choices, value = field.metadata.get("choices"), getattr(cfg, field.name)
        if choices and value is not None and value not in choices:  # None: an optional unset
            raise UserError(
                f"{type(cfg).__name__}: expected {field.name} in {', '.join(choices)}, "
                f"got {value!r}"
            )
