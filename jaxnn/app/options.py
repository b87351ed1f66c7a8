"""The options of each ``jaxnn`` command: one frozen dataclass per command, one flag per field.

``jaxnn train`` takes the fields of :class:`RunConfig` (what to train on and where to write it)
and of :class:`jaxnn.train.FitConfig` (how to train); ``eval``, ``predict`` and ``sample`` take
those of :class:`EvalOptions`, :class:`PredictOptions` and :class:`SampleOptions`, and ``doctor``
those of :class:`jaxnn.app.doctor.DoctorOptions` (beside the checks it names).
:mod:`jaxnn.app.flags` turns every field into its flag.

Each flag that several commands take is declared once: ``--out``, ``--model``, ``--dataset``,
``--model-config``, ``--data-option`` and ``--normalize`` in :class:`RunConfig`; ``--seed``,
``--lr``, ``--optimizer`` and ``--progress`` in :class:`jaxnn.train.FitConfig`. The other commands
take them with :func:`jaxnn.app.flags.reuse`.
"""

from __future__ import annotations

import dataclasses
import math

from jaxnn import models
from jaxnn.app import recipes
from jaxnn.app.flags import reuse
from jaxnn.errors import UserError
from jaxnn.train.config import (
    REQUIRED,
    FitConfig,
    check_field_choices,
    check_field_types,
    setting,
)

__all__ = ["RunConfig", "EvalOptions", "PredictOptions", "SampleOptions", "MAX_SAMPLE_LENGTH"]

#: the most tokens ``jaxnn sample`` generates in one call (the buffer and the loop are that long)
MAX_SAMPLE_LENGTH = 100_000


def _check(options) -> None:
    check_field_types(options)
    check_field_choices(options)


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """What to train on and where to write it: the ``jaxnn train`` flags besides
    :class:`jaxnn.train.FitConfig`'s. Each field's help text is declared with it.

    Raises:
      UserError: naming the first field of the wrong type or not among its choices, a process
        id outside ``[0, num_processes)``, several processes without ``--coordinator`` or
        ``--out``, or both ``--resume`` and ``--overwrite``.
    """

    model: str = setting("mlp", "model name.", choices=models.NAMES)
    dataset: str = setting(
        "mnist1d",
        "mnist1d, digits, mnist5k, pydoc_text, synthetic:<name>, tfds:<name>, or a file of your "
        "own: csv:PATH, npz:PATH, npy:DIR, text:PATH, images:DIR, or pack:DIR (written by jaxnn "
        "pack, streamed from disk); a bare my.csv or folder works too.",
    )
    out: str = setting(
        "",
        "run directory: train writes its config, metrics, curves, summary, TensorBoard files "
        "and checkpoints there; eval, predict, sample and doctor read them. Without it, train "
        "makes a fresh runs/MODEL-DATASET-N and points the link runs/latest at it.",
        metavar="RUN",
    )
    resume: bool = setting(
        False,
        "continue the run in --out (default: runs/latest) from its latest checkpoint, with its "
        "saved config (no other flag needed; a flag that changes what is trained is refused).",
    )
    overwrite: bool = setting(
        False,
        "replace the run in --out (what a run writes there is removed first; other files stay); "
        "without it, an --out that holds a run is refused unless --resume is given.",
    )
    config: str = setting(
        "", "start from a saved config.json (e.g. RUN/config.json); flags override its values."
    )
    normalize: bool = setting(
        True, "standardize inputs with statistics of the training split only."
    )
    doctor: bool = setting(
        False,
        "first run the cheap checks of the chapter-14 checklist (labels, leakage, the tiny-subset "
        "overfit) and stop with the report when one fails.",
    )
    recipe: str = setting(
        "",
        "start from a named recipe, which sets the model, the dataset and their settings (flags "
        "override it): nanogpt-char is nanoGPT's CPU character-level language model.",
        choices=("", *recipes.NAMED),
    )
    model_config: tuple[str, ...] = setting(
        (), "override a model config field, KEY=VALUE (repeatable), e.g. hidden=(256,256)."
    )
    data_option: tuple[str, ...] = setting(
        (), "pass an option to the dataset loader, KEY=VALUE (repeatable), e.g. seq_len=64."
    )
    coordinator: str = setting(
        "", "HOST:PORT of process 0 for a multi-process run (jax.distributed)."
    )
    num_processes: int = setting(1, "processes in a multi-process run.")
    process_id: int = setting(0, "this process's index in a multi-process run.")

    def __post_init__(self):
        _check(self)
        if not (0 <= self.process_id < self.num_processes):
            raise UserError(
                f"RunConfig: expected 0 <= process_id < num_processes ({self.num_processes}), "
                f"got {self.process_id}"
            )
        if self.num_processes > 1 and not (self.coordinator and self.out):
            missing = "--coordinator HOST:PORT" if not self.coordinator else "--out RUN"
            raise UserError(
                f"RunConfig: a run of {self.num_processes} processes needs {missing} (the same "
                "on every process)"
            )
        if self.resume and self.overwrite:
            raise UserError("RunConfig: expected --resume or --overwrite, got both")


@dataclasses.dataclass(frozen=True)
class EvalOptions:
    """``jaxnn eval``: score a run's best-validation model on a saved split or on a new file."""

    out: str = reuse(RunConfig, "out", default=REQUIRED)
    split: str = setting("val", "the saved split to score.", choices=("val", "test"))
    dataset: str | None = setting(None, "score every example of this source instead of a split.")
    data_option: tuple[str, ...] = reuse(RunConfig, "data_option")

    def __post_init__(self):
        _check(self)


@dataclasses.dataclass(frozen=True)
class PredictOptions:
    """``jaxnn predict``: a run's predictions for new inputs."""

    out: str = reuse(RunConfig, "out", default=REQUIRED)
    input: str = setting(
        REQUIRED,
        "a CSV, an .npy array, an image folder or file, or a .txt of prompts (language model).",
    )
    output: str | None = setting(None, "write here instead of standard output.")
    format: str = setting("csv", "the output format.", choices=("csv", "jsonl"))

    def __post_init__(self):
        _check(self)


@dataclasses.dataclass(frozen=True)
class SampleOptions:
    """``jaxnn sample``: continue a prompt with a trained language model (transformer or rnn).

    Raises:
      UserError: for a temperature that is not a number >= 0, a length that is not an int in
        ``[1, MAX_SAMPLE_LENGTH]``, an empty prompt, or a seed outside ``[0, 2**32)``.
    """

    out: str = reuse(RunConfig, "out", default=REQUIRED)
    prompt: str = setting("The ", "the text to continue (not empty).")
    length: int = setting(200, f"new tokens, 1 to {MAX_SAMPLE_LENGTH}.")
    temperature: float = setting(0.8, "sampling temperature; 0: greedy.")
    seed: int = reuse(FitConfig, "seed", help="seeds the sampling (0 to 2**32 - 1).")

    def __post_init__(self):
        t, n, seed = self.temperature, self.length, self.seed
        if not (_is_number(t) and math.isfinite(t) and t >= 0):
            raise UserError(f"--temperature: expected a number >= 0, got {t}")
        _check_length_and_prompt(n, self.prompt)
        if not (_is_number(seed) and 0 <= seed < 2**32):
            raise UserError(f"--seed: expected 0 <= seed < 2**32, got {seed}")
        _check(self)


def _check_length_and_prompt(n, prompt) -> None:
    if not (_is_number(n) and n > 0):
        raise UserError(f"--length: expected a positive number of tokens, got {n}")
    if n > MAX_SAMPLE_LENGTH:
        raise UserError(f"--length: expected at most {MAX_SAMPLE_LENGTH} new tokens, got {n}")
    if isinstance(prompt, str) and not prompt:
        raise UserError("--prompt: expected some text to continue, got an empty prompt")


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
