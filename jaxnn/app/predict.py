"""Finished runs, rebuilt: the model, its best-validation params and predictions on new files.

Chapter 5: inference is the forward pass alone, on inputs transformed exactly as the training
inputs were. :func:`load_run` reads a run directory (:mod:`jaxnn.train.run` owns its format)
and rebuilds the model from the saved config; ``jaxnn eval``, ``predict``, ``sample`` and
``doctor`` start from it. No training data is read.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, NamedTuple

import jax
import numpy as np

from jaxnn.data.containers import DatasetInfo
from jaxnn.errors import UserError
from jaxnn.train.run import CONFIG, DATA_INFO, info_from_json, read_config, read_json

__all__ = [
    "Run",
    "load_run",
    "missing_policy",
    "model_from_config",
    "predict_outputs",
    "predict_file",
    "format_rows",
]


class Run(NamedTuple):
    """A finished run, rebuilt from its directory: the model, its best-validation params and
    state, the saved config and the data info (classes, normalization, tokenizer)."""

    model: Any
    params: Any
    model_state: Any
    config: dict
    info: DatasetInfo
    out: Path


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
    if not path.exists():
        raise UserError(f"predict --input {path}: no such file or folder")
    if path.is_dir() or path.suffix.lower() in (".png", ".jpg", ".jpeg"):
        return _read_images(run, path)
    if path.suffix.lower() in (".npy", ".npz"):
        from jaxnn.data import arrays

        x = arrays.read_inputs(path, run.info.input_shape)
        return x, list(range(len(x)))
    if path.suffix.lower() in (".csv", ".tsv"):
        return _read_csv(run, path)
    raise UserError(
        f"predict --input {path}: expected a .csv, .npy, .npz, image file or image folder"
    )


def _read_images(run: Run, path: Path):
    from jaxnn.data import sources

    if run.info.modality != "image" or len(run.info.input_shape) != 3:
        raise UserError(f"predict: images given, but {run.out} was trained on {run.info.name}")
    h, w, c = run.info.input_shape
    x, files = sources.read_images(path, size=(h, w), mode="gray" if c == 1 else "rgb")
    return x, [str(f) for f in files]


def _read_csv(run: Run, path: Path):
    """A CSV's columns by the run's names, missing values treated as in training."""
    from jaxnn.data import sources

    source = (run.config.get("data") or {}).get("source") or {}
    features = source.get("feature_columns")
    if not features:
        raise UserError(f"predict: {run.out} was not trained on a CSV; give an .npy array")
    options = source.get("options", {})
    found = sources.read_csv_inputs(
        path, features, delimiter=options.get("delimiter", ","), **missing_policy(run)
    )
    return found.x, found.rows.tolist()


def missing_policy(run: Run) -> dict:
    """How the run's CSV treated missing values: ``{"missing", "fill"}`` for
    :func:`jaxnn.data.sources.read_csv_inputs`."""
    source = (run.config.get("data") or {}).get("source") or {}
    policy = source.get("options", {}).get("missing", "error")
    fill = (run.info.missing or {}).get("fill") if isinstance(run.info.missing, dict) else None
    return {"missing": policy if policy in ("error", "drop", "mean") else "error", "fill": fill}


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
