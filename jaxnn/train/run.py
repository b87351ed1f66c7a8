"""Run directories — Chapter 15: a finished run is an artifact that stands on its own.

This module owns the format; it builds no model (:mod:`jaxnn.app.predict` rebuilds a run).
``fit(..., out_dir=RUN)`` writes everything that evaluation, prediction, sampling and resuming
need, so none of them reloads the training data by name or needs a flag retyped:

- ``config.json``: the run id, the model and its resolved config, the data source (with the
  sha256 of a user's file), its options and the ``FitConfig``; on resume, a ``history`` of the
  fields that were changed (epochs, patience, ...);
- ``data_info.json``: what a model needs to know about its inputs: task, input shape, classes and
  their names, the normalization statistics of the training split, and the tokenizer;
- ``metrics.jsonl``, ``summary.json``, ``curves.png``, ``tensorboard/`` and ``checkpoints/``.

A run directory is untrusted input: every field read here is checked for type before use, nothing
is executed or unpickled, and the arrays come from orbax checkpoints verified by their digests.
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from pathlib import Path

from jaxnn.data.containers import TASKS, DatasetInfo
from jaxnn.errors import UserError

__all__ = ["CONFIG", "DATA_INFO", "read_config", "read_json", "info_to_json", "info_from_json",
           "new_run_id"]  # fmt: skip

CONFIG, DATA_INFO = "config.json", "data_info.json"


def new_run_id() -> str:
    """A fresh random run id (checkpoints of another run are refused on resume)."""
    return uuid.uuid4().hex


def read_json(path: Path, *, what: str) -> dict:
    """Read a JSON object from a run directory, with errors that name the file and the line.

    Raises:
      UserError: if the file is missing, not a regular file, or not a JSON object.
    """
    path = Path(path)
    if path.is_symlink() or not path.is_file():
        state = "a symbolic link" if path.is_symlink() else "missing"
        raise UserError(f"{path}: expected the run's {what} as a regular file, it is {state}")
    try:
        value = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        line = getattr(err, "lineno", "?")
        raise UserError(f"{path}:{line}: expected the run's {what} as JSON, {err}") from None
    if not isinstance(value, dict):
        raise UserError(f"{path}: expected a JSON object, got {type(value).__name__}")
    return value


_CONFIG_FIELDS = {"model": str, "model_config": dict, "dataset": str, "fit": dict}


def read_config(out) -> dict:
    """``RUN/config.json``, checked: the fields other code relies on exist with their types.

    Raises:
      UserError: naming the file and the field that is missing or of the wrong type.
    """
    path = Path(out) / CONFIG
    config = read_json(path, what="config")
    for field, kind in _CONFIG_FIELDS.items():
        if not isinstance(config.get(field), kind):
            got = type(config[field]).__name__ if field in config else "nothing"
            raise UserError(f"{path}: expected field {field!r} of type {kind.__name__}, got {got}")
    return config


def info_to_json(info: DatasetInfo) -> dict:
    """The :class:`~jaxnn.data.DatasetInfo` as JSON, the tokenizer included."""
    out = dataclasses.asdict(dataclasses.replace(info, tokenizer=None))
    out["tokenizer"] = info.tokenizer.to_json() if info.tokenizer is not None else None
    out["input_shape"] = list(info.input_shape)
    out["class_names"] = list(info.class_names) if info.class_names is not None else None
    return out


def info_from_json(value: dict, *, where: str = DATA_INFO) -> DatasetInfo:
    """Rebuild a :class:`~jaxnn.data.DatasetInfo` from :func:`info_to_json` output.

    Raises:
      UserError: if a field is missing or malformed.
    """
    from jaxnn.data.text import tokenizer_from_json

    try:
        if value.get("task") not in TASKS:
            raise ValueError(f"expected task in {TASKS}, got {value.get('task')!r}")
        tokenizer = value.get("tokenizer")
        fields = {f.name for f in dataclasses.fields(DatasetInfo)}
        kept = {k: v for k, v in value.items() if k in fields and k != "tokenizer"}
        kept["input_shape"] = tuple(int(d) for d in value["input_shape"])
        return DatasetInfo(**kept, tokenizer=tokenizer_from_json(tokenizer) if tokenizer else None)
    except (KeyError, TypeError, ValueError) as err:
        raise UserError(f"{where}: expected a data info written by jaxnn, {err}") from None
