"""The options of every data source — Chapter 9: a pipeline refuses a bad setting up front.

An option name means one thing whichever source takes it (``val_fraction`` is the share held out
for validation in ``digits``, ``csv:PATH`` and ``tfds:mnist`` alike), so :data:`RULES` gives each
name one test of its type and range. :func:`check_options` is the one check
:func:`jaxnn.data.load` runs for every source, before any data is read or generated: unknown
options are listed with the valid ones, a value of the wrong type or range is named with what
was expected, and the rules that tie two options together (``val_fraction + test_fraction < 1``,
a BPE vocabulary of at least 256 ids) run last.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeGuard

import numpy as np

from jaxnn.errors import UserError

__all__ = [
    "RULES",
    "bpe_vocabulary",
    "check_options",
    "csv_delimiter",
    "fractions_below_one",
    "image_size",
]

_DELIMITER_NAMES = {"tab": "\t", "\\t": "\t"}


def _is_int(v) -> TypeGuard[int | np.integer]:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def _is_real(v) -> TypeGuard[int | float | np.integer | np.floating]:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)


def _is_bool(v) -> bool:
    return isinstance(v, (bool, np.bool_))


def csv_delimiter(value) -> str:
    """The one-character field delimiter ``value`` names (``"tab"`` or ``"\\t"`` for a tab).

    Raises:
      ValueError: unless ``value`` is one character other than a quote or a line break.
    """
    if isinstance(value, str):
        value = _DELIMITER_NAMES.get(value, value)
    if not isinstance(value, str) or len(value) != 1 or value in '"\r\n':
        raise ValueError(f"csv_delimiter: expected one character, got {value!r}")
    return value


def image_size(value) -> tuple[int, int] | None:
    """``(height, width)`` from ``"HxW"``, ``"H,W"``, one int for a square or a pair; None stays.

    Raises:
      ValueError: unless both sides are positive integers.
    """
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        value = (value, value)
    elif isinstance(value, str):
        value = tuple(value.lower().replace(",", "x").split("x"))
    try:
        h, w = (int(s) for s in value)
    except (TypeError, ValueError):
        h = w = 0
    if h < 1 or w < 1:
        raise ValueError(f"image_size: expected HxW with positive integers, got {value!r}")
    return h, w


def _parses(parse: Callable) -> Callable[[object], bool]:
    """A rule's test: ``parse`` takes the value without a ValueError."""

    def test(value) -> bool:
        try:
            parse(value)
        except ValueError:
            return False
        return True

    return test


def _choice(*choices) -> tuple[Callable[[object], bool], str]:
    return (lambda v: v in choices), f"{{key}} one of {list(choices)}"


_POSITIVE = (lambda v: _is_int(v) and v > 0, "{key} to be a positive integer")
_OPTIONAL_POSITIVE = (lambda v: v is None or _POSITIVE[0](v), "{key} to be a positive integer")
_FRACTION = (lambda v: _is_real(v) and 0 < v < 1, "{key} to be a number in (0, 1)")
_BOOL = (_is_bool, "{key} to be True or False")

# Each option a source takes: (the test its value must pass, what passing means; {key} is its name).
RULES: dict[str, tuple[Callable[[Any], object], str]] = {
    "val_fraction": _FRACTION,
    "test_fraction": _FRACTION,
    # synthetic:*
    "n": _POSITIVE,
    "noise": (
        lambda v: _is_real(v) and 0 <= float(v) < float("inf"),
        "{key} to be a finite number >= 0",
    ),
    "arms": (lambda v: _is_int(v) and v >= 2, "{key} to be an integer >= 2"),
    # mnist1d
    "disk_cache": _BOOL,
    # pydoc_text, text:PATH
    "seq_len": _POSITIVE,
    "stride": _OPTIONAL_POSITIVE,
    "train_stride": _OPTIONAL_POSITIVE,
    "tokenizer": _choice("char", "bpe"),
    "vocab_size": _POSITIVE,
    # tfds:<name>
    "data_dir": (
        lambda v: v is None or isinstance(v, (str, os.PathLike)),
        "{key} to be a directory path",
    ),
    "download": _BOOL,
    "train_split": (lambda v: isinstance(v, str), "{key} to be a split name"),
    "test_split": (lambda v: isinstance(v, str), "{key} to be a split name"),
    "val_split": (lambda v: v is None or isinstance(v, str), "{key} to be a split name or None"),
    "max_examples": _OPTIONAL_POSITIVE,
    "stream": _BOOL,
    # csv:PATH, npz:PATH, npy:DIR, images:DIR
    "target": (
        lambda v: v is None or isinstance(v, (str, int, float, np.integer, np.floating)),
        "{key} to be a column name or index",
    ),
    "task": _choice(None, "classification", "regression"),
    "delimiter": (_parses(csv_delimiter), "{key} to be one character (or 'tab')"),
    "missing": _choice("error", "drop", "mean"),
    "modality": _choice(None, "tabular", "signal", "image", "text"),
    "size": (_parses(image_size), "{key}=HxW with positive integers (e.g. 28x28)"),
    "mode": _choice(None, "gray", "rgb"),
}


def fractions_below_one(where: str, values: Mapping) -> None:
    """The test and validation shares of one text or table leave some data for training."""
    val, test = values["val_fraction"], values["test_fraction"]
    if val + test >= 1.0:
        raise UserError(f"{where}: expected val_fraction + test_fraction < 1, got {val} + {test}")


def bpe_vocabulary(where: str, values: Mapping) -> None:
    """A byte-pair vocabulary holds the 256 bytes before any merge."""
    if values["tokenizer"] == "bpe" and values["vocab_size"] < 256:
        raise UserError(
            f"{where}: expected vocab_size >= 256 for bpe tokens, got {values['vocab_size']}"
        )


def _passes(test: Callable[[Any], object], value) -> bool:
    try:
        return bool(test(value))
    except (TypeError, ValueError, OverflowError):  # e.g. a list compared with a number
        return False


def check_options(
    where: str,
    defaults: Mapping[str, object],
    given: Mapping[str, object],
    checks: Iterable[Callable[[str, Mapping], None]] = (),
) -> dict:
    """Every option a source will be called with, checked before any data is read.

    Chapter 9: a bad setting found after minutes of parsing costs those minutes; every value is
    checked against its rule in :data:`RULES` first, then ``checks`` (rules tying options
    together) run on the filled-in values.

    Args:
      where: the source, to start error messages with, e.g. ``"load('digits')"``.
      defaults: each option the source takes, with its default.
      given: the options passed.
      checks: functions ``check(where, values)`` that raise on a bad combination.

    Returns:
      ``defaults`` updated with ``given``.

    Raises:
      UserError: for an unknown option (the message lists the valid ones) or a value of the
        wrong type or range (the message says what was expected).
    """
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        raise UserError(
            f"{where}: unknown option(s) {unknown}; expected some of {sorted(defaults)} "
            f"(pass them as --data-option KEY=VALUE)"
        )
    for key, value in given.items():
        test, what = RULES[key]
        if not _passes(test, value):
            raise UserError(f"{where}: expected {what.format(key=key)}, got {value!r}")
    values = {**defaults, **given}
    for check in checks:
        check(where, values)
    return values
