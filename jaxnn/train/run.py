"""Run directories — Chapter 15: a finished run is an artifact that stands on its own.

This module owns the format; it builds no model (:mod:`jaxnn.app.predict` rebuilds a run).
``fit(..., out_dir=RUN)`` writes everything that evaluation, prediction, sampling and resuming
need, so none of them reloads the training data by name or needs a flag retyped:

- ``config.json``: the run id, the model and its resolved config, the data source (with the
  sha256 of a user's file), its options and the ``FitConfig``; on resume, a ``history`` of the
  fields that were changed (epochs, patience, ...);
- ``data_info.json``: what a model needs to know about its inputs: task, input shape, classes and
  their names, the normalization statistics of the training split, and the tokenizer;
- ``metrics.jsonl``, ``summary.json``, ``curves.png``, ``tensorboard/`` and ``checkpoints/``;
- ``.lock``: held by the ``jaxnn train`` writing the run (:func:`jaxnn._contained.run_lock`).

A run directory is untrusted input: every file is read and written through
:mod:`jaxnn._contained` (no link followed), every field read here is checked for type before use,
a key jaxnn did not write is refused, nothing is executed or unpickled, and the arrays come from
orbax checkpoints verified by their digests.
"""

from __future__ import annotations

import dataclasses
import json
import os
import uuid
from pathlib import Path

from jaxnn import _contained
from jaxnn.data.containers import TASKS, DatasetInfo
from jaxnn.errors import UserError

__all__ = ["CONFIG", "DATA_INFO", "METRICS", "SUMMARY", "CURVES", "ENTRIES", "MARKS",
           "read_config", "read_json", "write_json", "holds_run", "check_entries",
           "remove_entries", "info_to_json", "info_from_json", "new_run_id"]  # fmt: skip

CONFIG, DATA_INFO = "config.json", "data_info.json"
METRICS, SUMMARY, CURVES = "metrics.jsonl", "summary.json", "curves.png"
#: what ``jaxnn train`` writes in a run directory (``--overwrite`` removes these, nothing else)
ENTRIES = (CONFIG, DATA_INFO, METRICS, SUMMARY, CURVES, "tensorboard", "checkpoints", "export",
           "eval.json", "eval_confusion.png", "data.npz")  # fmt: skip
#: a directory holding one of these holds a run: a new training there needs --resume or --overwrite
MARKS = (CONFIG, METRICS, SUMMARY, "checkpoints")
#: the keys of config.json, and of its "data" record
CONFIG_KEYS = ("run_id", "model", "model_config", "dataset", "fit", "data", "history", "recipe")
DATA_KEYS = ("options", "normalize", "source")


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
        value = json.loads(_contained.read_text(path, name=str(path)))  # O_NOFOLLOW
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        line = getattr(err, "lineno", "?")
        raise UserError(f"{path}:{line}: expected the run's {what} as JSON, {err}") from None
    if not isinstance(value, dict):
        raise UserError(f"{path}: expected a JSON object, got {type(value).__name__}")
    return value


def write_json(path, obj) -> Path:
    """Write ``obj`` to ``path`` as strict JSON (no NaN or Infinity), replacing the file at once
    and never through a link (:func:`jaxnn._contained.write_replacing`)."""
    text = json.dumps(obj, indent=2, allow_nan=False) + "\n"
    return _contained.write_replacing(Path(path), text.encode())


_CONFIG_FIELDS = {"model": str, "model_config": dict, "dataset": str, "fit": dict}
_OPTIONAL_FIELDS = {"run_id": str, "data": dict, "history": list, "recipe": dict}


def read_config(out) -> dict:
    """``RUN/config.json``, checked: the fields other code relies on exist with their types, and
    no key is there that jaxnn does not write (a misspelt or planted key would be ignored).

    Raises:
      UserError: naming the file and the field that is missing, of the wrong type or unknown.
    """
    from jaxnn.train.config import FitConfig

    path = Path(out) / CONFIG
    config = read_json(path, what="config")
    for field, kind in (*_CONFIG_FIELDS.items(), *_OPTIONAL_FIELDS.items()):
        if field in config or field in _CONFIG_FIELDS:
            _check_type(path, field, config.get(field, _MISSING), kind)
    _known_keys(path, "", config, CONFIG_KEYS)
    _known_keys(path, "fit.", config["fit"], [f.name for f in dataclasses.fields(FitConfig)])
    data = config.get("data", {})
    _known_keys(path, "data.", data, DATA_KEYS)
    for key in ("options", "source"):
        if data.get(key) is not None:
            _check_type(path, f"data.{key}", data[key], dict)
    if not all(isinstance(h, dict) for h in config.get("history", [])):
        raise UserError(f"{path}: expected field 'history' to be a list of objects")
    return config


_MISSING = object()


def _check_type(path: Path, field: str, value, kind: type) -> None:
    if not isinstance(value, kind):
        got = "nothing" if value is _MISSING else type(value).__name__
        raise UserError(f"{path}: expected field {field!r} of type {kind.__name__}, got {got}")


def _known_keys(path: Path, prefix: str, value: dict, known) -> None:
    unknown = sorted(set(value) - set(known))
    if unknown:
        names = ", ".join(repr(prefix + k) for k in unknown)
        raise UserError(
            f"{path}: unknown key {names}; expected only {', '.join(known)} (a key jaxnn does "
            "not write would be ignored: remove it)"
        )


def holds_run(out) -> bool:
    """Whether the directory ``out`` holds a run (its config, metrics, summary or checkpoints)."""
    return any(os.path.lexists(Path(out) / name) for name in MARKS)


def check_entries(name: str, out) -> None:
    """Refuse a symbolic link at any name a run writes or reads in ``out`` (``.lock``
    included), before any work.

    Raises:
      UserError: naming the first link.
    """
    for entry in (*ENTRIES, ".lock"):
        _contained.refuse_link(name, Path(out) / entry)


def remove_entries(name: str, out) -> list[str]:
    """Remove what a run wrote in ``out`` (only :data:`ENTRIES`; a user's other files stay);
    returns the names removed."""
    out, removed = Path(out), []
    for entry in ENTRIES:
        if os.path.lexists(out / entry):
            _contained.remove_inside(name, out, out / entry)
            removed.append(entry)
    return removed


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
