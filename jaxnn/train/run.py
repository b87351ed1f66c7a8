"""Run directories — Chapter 15: a finished run is an artifact that stands on its own.

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
from typing import Any, NamedTuple

import jax
import numpy as np

from jaxnn.data.containers import TASKS, DatasetInfo
from jaxnn.errors import UserError

__all__ = [
    "Run",
    "load_run",
    "read_config",
    "read_json",
    "info_to_json",
    "info_from_json",
    "new_run_id",
    "model_from_config",
    "predict_outputs",
    "predict_file",
    "format_rows",
]

CONFIG, DATA_INFO = "config.json", "data_info.json"


class Run(NamedTuple):
    """A finished run, rebuilt from its directory: the model, its best-validation params and
    state, the saved config and the data info (classes, normalization, tokenizer)."""

    model: Any
    params: Any
    model_state: Any
    config: dict
    info: DatasetInfo
    out: Path


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


def model_from_config(config: dict, where) -> Any:
    """The :class:`jaxnn.models.Model` a saved ``config.json`` describes."""
    from jaxnn import models

    fields = {k: tuple(v) if isinstance(v, list) else v for k, v in config["model_config"].items()}
    try:
        return models.build(config["model"], **fields)
    except (TypeError, ValueError) as err:
        raise UserError(f"{where}: the saved model does not build: {err}") from None


def load_run(out_dir) -> Run:
    """Rebuild a run from its directory: model, best-validation params, config and data info.

    No training data is read: ``eval`` and ``predict`` bring their own inputs.

    Raises:
      UserError: if the directory is not a run, has no checkpoint (trained with
        ``--no-checkpoint``, or stopped before its first epoch ended), or its files are malformed.
    """
    from jaxnn.train.checkpoint import load_best

    out = Path(out_dir)
    if not out.is_dir():
        raise UserError(f"{out}: expected a run directory written by `jaxnn train`, got no folder")
    config = read_config(out)
    info = info_from_json(read_json(out / DATA_INFO, what="data info"), where=str(out / DATA_INFO))
    model = model_from_config(config, out / CONFIG)
    target = model.init(jax.random.key(0))
    params, model_state = load_best(
        out / "checkpoints", target, expected_run_id=config.get("run_id")
    )
    return Run(model, params, model_state, config, info, out)


def predict_outputs(run: Run, x: np.ndarray, *, batch_size: int = 1000) -> np.ndarray:
    """The model's outputs for raw inputs ``x``, standardized with the run's saved statistics.

    Chapter 5: inference is the forward pass alone (no gradients, no dropout, running batch
    statistics), on inputs transformed exactly as the training inputs were.
    """
    from jaxnn.data.pipeline import apply_statistics

    if run.info.normalization is not None:
        x = apply_statistics(run.info.normalization, x)
    x = np.asarray(x)
    if tuple(x.shape[1:]) != run.info.input_shape:
        raise UserError(
            f"predict: expected inputs of shape (N, {', '.join(map(str, run.info.input_shape))}), "
            f"got {x.shape}"
        )
    forward = jax.jit(lambda p, s, xb: run.model.apply(p, xb, state=s)[0])
    outs = [
        np.asarray(forward(run.params, run.model_state, x[i : i + batch_size]))
        for i in range(0, len(x), batch_size)
    ]
    return np.concatenate(outs) if outs else np.zeros((0,))


def _read_inputs(run: Run, path: Path):
    """New inputs for ``predict``, read the way the run's training data was read.

    Returns:
      ``(x, ids)``: inputs ``(N, ...)`` and one identifier per row (a row number or a file).
    """
    from jaxnn.data import sources

    source = (run.config.get("data") or {}).get("source") or {}
    if not path.exists():
        raise UserError(f"predict --input {path}: no such file or folder")
    if path.is_dir() or path.suffix.lower() in (".png", ".jpg", ".jpeg"):
        if run.info.modality != "image" or len(run.info.input_shape) != 3:
            raise UserError(f"predict: images given, but {run.out} was trained on {run.info.name}")
        h, w, c = run.info.input_shape
        x, files = sources.read_images(path, size=(h, w), mode="gray" if c == 1 else "rgb")
        return x, [str(f) for f in files]
    if path.suffix.lower() == ".npy":
        x = np.load(path, allow_pickle=False)
        return x, list(range(len(x)))
    if path.suffix.lower() in (".csv", ".tsv"):
        features = source.get("feature_columns")
        if not features:
            raise UserError(f"predict: {run.out} was not trained on a CSV; give an .npy array")
        delimiter = source.get("options", {}).get("delimiter", ",")
        x = sources.read_csv_features(path, features, delimiter=delimiter)
        return x, list(range(len(x)))
    raise UserError(f"predict --input {path}: expected a .csv, .npy, image file or image folder")


def predict_file(run: Run, path) -> list[dict]:
    """Predictions for the inputs in ``path``: one dict per row.

    Classification rows hold the predicted class name and the probability of every class;
    regression rows the predicted value(s).
    """
    import jax.nn

    if run.info.task == "language_model":
        return _next_tokens(run, Path(path))
    x, ids = _read_inputs(run, Path(path))
    outputs = predict_outputs(run, x)
    if run.info.task == "regression":
        return [
            {"id": i, "prediction": np.ravel(o).tolist()} for i, o in zip(ids, outputs, strict=True)
        ]
    names = list(run.info.class_names or range(run.info.num_classes))
    probs = np.asarray(jax.nn.softmax(outputs, axis=-1))
    rows = []
    for i, p in zip(ids, probs, strict=True):
        row = {"id": i, "prediction": str(names[int(np.argmax(p))])}
        row.update({f"p_{name}": round(float(q), 6) for name, q in zip(names, p, strict=True)})
        rows.append(row)
    return rows


def _next_tokens(run: Run, path: Path, top: int = 5) -> list[dict]:
    """A language model's prediction for each line of a text file: the next token's distribution.

    Each row holds the prompt, the most likely next token and its probability, and the ``top``
    most likely tokens with theirs.
    """
    import jax.nn

    if path.suffix.lower() != ".txt" or not path.is_file():
        raise UserError(f"predict --input {path}: expected a .txt file of prompts, one per line")
    tokenizer, max_len = run.info.tokenizer, run.info.input_shape[0]
    prompts = [line for line in path.read_text(encoding="utf-8").splitlines() if line]
    if not prompts:
        raise UserError(f"predict --input {path}: expected at least one non-empty line")
    rows = []
    for i, prompt in enumerate(prompts):
        ids = np.asarray(tokenizer.encode(prompt), np.int32)[-max_len:][None]  # (1, T)
        logits, _ = run.model.apply(run.params, ids, state=run.model_state)
        probs = np.asarray(jax.nn.softmax(logits[0, -1]))  # (V,)
        best = np.argsort(-probs)[:top]
        tokens = [tokenizer.decode([int(t)]) for t in best]
        rows.append({
            "id": i, "prompt": prompt, "prediction": tokens[0],
            "probability": round(float(probs[best[0]]), 6),
            "top": " ".join(f"{t!r}:{probs[b]:.4f}" for t, b in zip(tokens, best, strict=True)),
        })  # fmt: skip
    return rows


def format_rows(rows: list[dict], fmt: str) -> str:
    """``rows`` as CSV (a header, then one line per row) or as JSON lines."""
    if fmt == "jsonl":
        return "".join(json.dumps(r) + "\n" for r in rows)
    if not rows:
        return ""
    import csv
    import io

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
    writer.writeheader()
    for row in rows:
        writer.writerow(
            {k: v if not isinstance(v, list) else " ".join(map(str, v)) for k, v in row.items()}
        )
    return buf.getvalue()
